"""Copy jobs: a state machine driven by the clock, and exact peak concurrency from job intervals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from simulator.timefmt import job_time

JOB_TYPE = "imsCopyImageInRegionJob"
# No FAIL payload was ever captured (ims-contract.md 3.2); the code below is the simulator's own.
FAIL_CODE = "IMG.0999"
FAIL_REASON = "Failed to replicate the image."
# INIT is brief: a tenth of the job, at most one second.
INIT_SHARE = 0.1
INIT_MAX_SECONDS = 1.0


@dataclass
class Job:
    job_id: str
    project_id: str
    source_image_id: str
    image_id: str
    image_name: str
    cmk_id: str | None
    begin: float
    duration: float  # planned length of a successful copy
    running_at: float
    end: float  # when it reaches SUCCESS, or FAIL (a failing job stops part-way)
    fails: bool

    @classmethod
    def plan(cls, *, begin: float, duration: float, fails: bool, fail_point: float, **ids: Any) -> Job:
        end = begin + (duration * fail_point if fails else duration)
        running_at = min(begin + min(INIT_SHARE * duration, INIT_MAX_SECONDS), end)
        return cls(begin=begin, duration=duration, running_at=running_at, end=end, fails=fails, **ids)

    def status(self, now: float) -> str:
        if now >= self.end:
            return "FAIL" if self.fails else "SUCCESS"
        return "INIT" if now < self.running_at else "RUNNING"

    def active(self, now: float) -> bool:
        return now < self.end

    def progress(self, now: float) -> float:
        """Share of the copy done, 0..1; a failed job stays where it stopped."""
        if self.duration <= 0:
            return 1.0 if self.status(now) == "SUCCESS" else 0.0
        return round(min(1.0, (min(now, self.end) - self.begin) / self.duration), 2)

    def view(self, now: float) -> dict[str, Any]:
        """The ``ShowJobResponse`` body (ims-contract.md 3.2)."""
        status = self.status(now)
        done = status in ("SUCCESS", "FAIL")
        entities = {"image_id": self.image_id, "image_name": self.image_name} if status == "SUCCESS" else {}
        return {
            "status": status,
            "entities": entities,
            "job_id": self.job_id,
            "job_type": JOB_TYPE,
            "begin_time": job_time(self.begin),
            "end_time": job_time(self.end) if done else "",
            "error_code": FAIL_CODE if status == "FAIL" else None,
            "fail_reason": FAIL_REASON if status == "FAIL" else None,
        }

    def progress_view(self, now: float) -> dict[str, Any]:
        """The progress extension: the same envelope, ``entities`` adding ``process_percent``/``current_task``."""
        body = self.view(now)
        task = {"INIT": "CopyImageInRegionTask:ObtainImageInfoTask",
                "RUNNING": "CopyImageInRegionTask:CopyImageDataTask"}.get(body["status"], "")
        body["entities"] = {**body["entities"], "process_percent": self.progress(now), "current_task": task}
        return body


def peak_concurrency(jobs: Iterable[Job]) -> int:
    """The most jobs ever active at one instant; a job ending exactly when another begins does not overlap."""
    events = sorted([(job.begin, 1) for job in jobs if job.end > job.begin]
                    + [(job.end, -1) for job in jobs if job.end > job.begin])
    # (t, -1) sorts before (t, 1): ends are counted before starts at the same instant.
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak
