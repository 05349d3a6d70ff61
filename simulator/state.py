"""In-memory state: projects with their images, keys and jobs, advanced lazily by the clock.

Handlers call ``tick(now)`` first and then mutate without awaiting, so on uvicorn's single event loop every
request sees and leaves a consistent state without locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.jobs import Job, peak_concurrency
from simulator.timefmt import image_time

# Images that hold no data do not count towards the private-image quota (a simulator choice).
NOT_COUNTED_STATUSES = ("killed", "deleted")


@dataclass
class Project:
    id: str
    name: str
    job_limit: int
    image_quota: int
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # by key_id
    jobs: dict[str, Job] = field(default_factory=dict)
    # Insertion order of images: breaks created_at ties so paging by marker is stable.
    image_order: dict[str, int] = field(default_factory=dict)

    def add_image(self, record: dict[str, Any]) -> None:
        self.images[record["id"]] = record
        self.image_order[record["id"]] = len(self.image_order)

    def active_jobs(self, now: float) -> list[Job]:
        return [job for job in self.jobs.values() if job.active(now)]

    def quota_used(self) -> int:
        return sum(
            1 for image in self.images.values()
            if image.get("visibility") == "private" and image.get("status") not in NOT_COUNTED_STATUSES
        )

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "project_id": self.id,
            "project_name": self.name,
            "image_count": len(self.images),
            "quota_used": self.quota_used(),
            "key_count": len(self.keys),
            "jobs_total": len(self.jobs),
            "running_jobs": len(self.active_jobs(now)),
            "peak_concurrent_jobs": peak_concurrency(self.jobs.values()),
            "job_limit": self.job_limit,
            "image_quota": self.image_quota,
        }


class SimState:
    def __init__(self, region: str, projects: list[Project]) -> None:
        self.region = region
        self.projects = {project.id: project for project in projects}
        self._pending: list[Job] = []  # jobs whose image has not reached its final status yet

    @property
    def first_project(self) -> Project:
        return next(iter(self.projects.values()))

    def project_named(self, name: str) -> Project | None:
        return next((p for p in self.projects.values() if p.name == name), None)

    def start_job(self, project: Project, job: Job, image: dict[str, Any]) -> None:
        project.jobs[job.job_id] = job
        project.add_image(image)
        self._pending.append(job)

    def tick(self, now: float) -> None:
        """Bring every in-flight copy's image to the status its job has reached at ``now``."""
        pending = []
        for job in self._pending:
            image = self.projects[job.project_id].images[job.image_id]
            status = job.status(now)
            if status == "INIT":
                _set_status(image, "queued", job.begin)
            elif status == "RUNNING":
                _set_status(image, "saving", job.running_at)
            else:
                _set_status(image, "active" if status == "SUCCESS" else "killed", job.end)
                if status == "SUCCESS":
                    image["active_at"] = image["updated_at"]
                continue
            pending.append(job)
        self._pending = pending


def _set_status(image: dict[str, Any], status: str, at: float) -> None:
    if image["status"] != status:
        image["status"] = status
        image["updated_at"] = image_time(at)
