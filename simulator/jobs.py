"""Asynchronous jobs (copies and member changes): a state machine driven by the clock, and exact peak concurrency
from job intervals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from simulator.timefmt import job_time

# Job types as Huawei's job pages name them (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0911.html).
JOB_TYPE = "imsCopyImageInRegionJob"
CROSS_REGION_JOB_TYPE = "imsCrossRegionCopyImageJob"
ADD_MEMBERS_JOB_TYPE = "imsAddImageMembersJob"
DELETE_MEMBERS_JOB_TYPE = "imsDelImageMembersJob"
UPDATE_MEMBERS_JOB_TYPE = "imsUpdateImageMembersJob"
# The concurrency pool a job takes a place in; member jobs take none.
IN_REGION = "in_region"
CROSS_REGION = "cross_region"
SLOTS = {JOB_TYPE: IN_REGION, CROSS_REGION_JOB_TYPE: CROSS_REGION}
# The progress endpoint's current_task: the simulator's own names (no real ones were captured).
TASKS = {
    JOB_TYPE: "CopyImageInRegionTask",
    CROSS_REGION_JOB_TYPE: "CrossRegionCopyImageTask",
    ADD_MEMBERS_JOB_TYPE: "AddImageMembersTask",
    DELETE_MEMBERS_JOB_TYPE: "DeleteImageMembersTask",
    UPDATE_MEMBERS_JOB_TYPE: "UpdateImageMembersTask",
}
STEPS = {"INIT": "ObtainImageInfoTask", "RUNNING": "CopyImageDataTask"}
# No FAIL payload was ever captured; the code below is the simulator's own (docs/simulator.md).
FAIL_CODE = "IMG.0999"
FAIL_REASON = "Failed to replicate the image."
# INIT is brief: a tenth of the job, at most one second.
INIT_SHARE = 0.1
INIT_MAX_SECONDS = 1.0


@dataclass(frozen=True)
class MemberChange:
    """What a member job does to one (image, member) pair when it ends."""

    owner_id: str  # the project that owns the image
    image_id: str
    member_id: str
    action: str  # "add", "delete" or "update"
    status: str = "pending"  # the member status an "update" sets


@dataclass
class Job:
    job_id: str
    project_id: str
    begin: float
    duration: float  # planned length of a successful job
    running_at: float
    end: float  # when it reaches SUCCESS, or FAIL (a failing job stops part-way)
    fails: bool
    job_type: str = JOB_TYPE
    source_image_id: str | None = None
    image_id: str | None = None
    image_name: str | None = None
    cmk_id: str | None = None
    image_project_id: str | None = None  # where the new image lives: the destination project across regions
    external: bool = False  # started outside the client under test (POST /_sim/external_jobs)
    member_changes: tuple[MemberChange, ...] = ()

    @classmethod
    def plan(cls, *, begin: float, duration: float, fails: bool, fail_point: float, **ids: Any) -> Job:
        end = begin + (duration * fail_point if fails else duration)
        running_at = min(begin + min(INIT_SHARE * duration, INIT_MAX_SECONDS), end)
        return cls(begin=begin, duration=duration, running_at=running_at, end=end, fails=fails, **ids)

    @property
    def slot(self) -> str | None:
        return SLOTS.get(self.job_type)

    def status(self, now: float) -> str:
        if now >= self.end:
            return "FAIL" if self.fails else "SUCCESS"
        return "INIT" if now < self.running_at else "RUNNING"

    def active(self, now: float) -> bool:
        return now < self.end

    def progress(self, now: float) -> float:
        """Share of the job done, 0..1; a failed job stays where it stopped."""
        if self.duration <= 0:
            return 1.0 if self.status(now) == "SUCCESS" else 0.0
        return round(min(1.0, (min(now, self.end) - self.begin) / self.duration), 2)

    def _entities(self) -> dict[str, Any]:
        if self.member_changes:
            return {
                "results": [
                    {"image_id": c.image_id, "project_id": c.member_id, "status": "success"}
                    for c in self.member_changes
                ]
            }
        if self.image_id is None:
            return {}
        return {"image_id": self.image_id, "image_name": self.image_name}

    def view(self, now: float) -> dict[str, Any]:
        """The ``ShowJobResponse`` body (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0905.html)."""
        status = self.status(now)
        done = status in ("SUCCESS", "FAIL")
        return {
            "status": status,
            "entities": self._entities() if status == "SUCCESS" else {},
            "job_id": self.job_id,
            "job_type": self.job_type,
            "begin_time": job_time(self.begin),
            "end_time": job_time(self.end) if done else "",
            "error_code": FAIL_CODE if status == "FAIL" else None,
            "fail_reason": FAIL_REASON if status == "FAIL" else None,
        }

    def progress_view(self, now: float) -> dict[str, Any]:
        """The progress extension: the same envelope, ``entities`` adding ``process_percent``/``current_task``."""
        body = self.view(now)
        step = STEPS.get(body["status"])
        task = "" if step is None else TASKS[self.job_type] + (f":{step}" if self.slot else "")
        body["entities"] = {**body["entities"], "process_percent": self.progress(now), "current_task": task}
        return body


def peak_concurrency(jobs: Iterable[Job]) -> int:
    """The most jobs ever active at one instant; a job ending exactly when another begins does not overlap."""
    jobs = [job for job in jobs if job.end > job.begin]
    events = sorted([(job.begin, 1) for job in jobs] + [(job.end, -1) for job in jobs])
    # (t, -1) sorts before (t, 1): ends are counted before starts at the same instant.
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak
