"""The job state machine on a pinned clock, and exact peak concurrency from intervals."""

from __future__ import annotations

import pytest

from simulator.jobs import Job, peak_concurrency


def job(begin: float, duration: float, *, fails: bool = False, fail_point: float = 0.5, job_id: str = "j") -> Job:
    return Job.plan(
        begin=begin,
        duration=duration,
        fails=fails,
        fail_point=fail_point,
        job_id=job_id,
        project_id="p",
        source_image_id="s",
        image_id="i",
        image_name="n",
        cmk_id=None,
    )


def test_success_path_init_running_success() -> None:
    j = job(1000.0, 10.0)
    assert [j.status(t) for t in (1000.0, 1000.5, 1001.0, 1009.9, 1010.0)] == [
        "INIT",
        "INIT",
        "RUNNING",
        "RUNNING",
        "SUCCESS",
    ]
    assert j.view(1005.0)["end_time"] == "" and j.view(1005.0)["entities"] == {}
    done = j.view(1010.0)
    assert done["entities"] == {"image_id": "i", "image_name": "n"}
    assert done["error_code"] is None and done["fail_reason"] is None
    assert done["begin_time"] == "1970-01-01T00:16:40.000Z" and done["end_time"] == "1970-01-01T00:16:50.000Z"
    assert done["job_type"] == "imsCopyImageInRegionJob"


def test_progress_grows_to_one() -> None:
    j = job(0.0, 4.0)
    assert [j.progress(t) for t in (0.0, 1.0, 3.0, 4.0, 9.0)] == [0.0, 0.25, 0.75, 1.0, 1.0]
    view = j.progress_view(1.0)
    assert view["entities"]["process_percent"] == 0.25
    assert view["entities"]["current_task"]


def test_a_failing_job_stops_part_way() -> None:
    j = job(0.0, 10.0, fails=True, fail_point=0.4)
    assert j.status(3.9) == "RUNNING" and j.status(4.0) == "FAIL"
    view = j.view(5.0)
    assert view["entities"] == {} and view["error_code"] and view["fail_reason"] and view["end_time"]
    assert j.progress(100.0) == 0.4


def test_init_is_brief() -> None:
    assert job(0.0, 100.0).running_at == 1.0  # at most a second
    assert job(0.0, 1.0).running_at == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("intervals", "peak"),
    [
        ([], 0),
        ([(0, 1)], 1),
        ([(0, 2), (1, 3), (2, 4)], 2),  # the first ends exactly when the third begins
        ([(0, 10), (1, 2), (1, 3), (2.5, 4)], 3),
        ([(0, 1), (1, 2), (2, 3)], 1),
        ([(0, 5)] * 5, 5),
    ],
)
def test_peak_concurrency_is_exact(intervals: list[tuple[float, float]], peak: int) -> None:
    jobs = [job(begin, end - begin, job_id=str(i)) for i, (begin, end) in enumerate(intervals)]
    assert peak_concurrency(jobs) == peak
