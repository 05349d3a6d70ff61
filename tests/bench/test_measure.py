"""The bench's figures from job records, checked by hand on a few jobs."""

from __future__ import annotations

import pytest

from bench import measure


def _job(project: str, begin: float, seconds: float = 10.0) -> dict[str, object]:
    return {"project_id": project, "begin": begin, "end": begin + seconds}


def test_idle_slot_time_splits_into_the_ramp_the_hand_offs_and_the_tail_and_adds_up_to_the_utilisation() -> None:
    # Two projects of two slots each over 0..22 s: "a" starts its slots at 0 and 1 s and hands one on 1 s late;
    # "b" starts at 2 and 3 s, hands on at once, and its slots stand idle from 13 s and 22 s to the end.
    jobs = [_job("a", 0), _job("a", 1), _job("a", 10), _job("a", 12), _job("b", 2), _job("b", 3), _job("b", 12)]
    ramp, handoffs, tail = measure.idle_shares(jobs, 2)
    slot_seconds = 2 * 2 * 22
    assert (ramp, handoffs, tail) == pytest.approx(
        ((0 + 1 + 2 + 3) / slot_seconds, 1 / slot_seconds, 11 / slot_seconds)
    )
    assert 1 - (ramp + handoffs + tail) == pytest.approx(measure.utilisation(jobs, 4))
