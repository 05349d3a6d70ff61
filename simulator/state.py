"""In-memory state: regions and their projects, each with images, keys, jobs, image members and tags; advanced
lazily by the clock.

Handlers call ``tick(now)`` first and then mutate without awaiting, so on uvicorn's single event loop every
request sees and leaves a consistent state without locks.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.catalog.records import tag_pairs
from simulator.config import AgencySpec
from simulator.errors import ImsError
from simulator.jobs import CROSS_REGION, IN_REGION, Job, MemberChange, peak_concurrency
from simulator.timefmt import image_time

# Images that hold no data do not count towards the private-image quota (a simulator choice).
NOT_COUNTED_STATUSES = ("killed", "deleted")
# An image in these states is still being made (a copy's queued or saving image, an upload in progress).
CREATING_STATUSES = ("queued", "saving")
MEMBER_SCHEMA = "/v2/schemas/member"


@dataclass
class Project:
    id: str
    name: str
    job_limit: int
    image_quota: int
    region: str = ""
    cross_region_job_limit: int = 5
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # by key_id
    jobs: dict[str, Job] = field(default_factory=dict)
    # Insertion order of images: breaks created_at ties so paging by marker is stable.
    image_order: dict[str, int] = field(default_factory=dict)
    members: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # image -> member -> record
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # image -> key -> value

    def add_image(self, record: dict[str, Any]) -> None:
        """Add a full record; the tags it lists (``"key=value"``) become the tags API's."""
        self.images[record["id"]] = record
        self.image_order[record["id"]] = len(self.image_order)
        if record.get("tags"):
            self.tags[record["id"]] = tag_pairs(record["tags"])

    def slot_jobs(self, slots: Iterable[str]) -> list[Job]:
        wanted = set(slots)
        return [job for job in self.jobs.values() if job.slot in wanted]

    def active_jobs(self, now: float, slots: Iterable[str] = (IN_REGION,)) -> list[Job]:
        """Jobs holding a place in the given pools at ``now`` (by default the in-region copies)."""
        return [job for job in self.slot_jobs(slots) if job.active(now)]

    def quota_used(self) -> int:
        return sum(
            1
            for image in self.images.values()
            if image.get("visibility") != "public" and image.get("status") not in NOT_COUNTED_STATUSES
        )

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "project_id": self.id,
            "project_name": self.name,
            "region": self.region,
            "image_count": len(self.images),
            "quota_used": self.quota_used(),
            "key_count": len(self.keys),
            "jobs_total": len(self.slot_jobs([IN_REGION])),
            "running_jobs": len(self.active_jobs(now)),
            "peak_concurrent_jobs": peak_concurrency(self.slot_jobs([IN_REGION])),
            "cross_region_jobs_total": len(self.slot_jobs([CROSS_REGION])),
            "running_cross_region_jobs": len(self.active_jobs(now, [CROSS_REGION])),
            "peak_concurrent_cross_region_jobs": peak_concurrency(self.slot_jobs([CROSS_REGION])),
            "job_limit": self.job_limit,
            "cross_region_job_limit": self.cross_region_job_limit,
            "image_quota": self.image_quota,
        }


class SimState:
    def __init__(self, regions: Mapping[str, list[Project]], agencies: Iterable[AgencySpec] = ()) -> None:
        # Each region's projects in order: the first is the region's default project.
        self.regions = {name: list(projects) for name, projects in regions.items()}
        self.projects = {project.id: project for projects in self.regions.values() for project in projects}
        self.agencies = {agency.name: agency for agency in agencies}
        # Who sees whose images: member project -> image -> owner project.
        self.memberships: dict[str, dict[str, str]] = {}
        # Jobs whose effects are not final yet, by when they next change (a job's times are fixed when it starts):
        # a request looks only at those due, not at every running job (1,000 copies made each request walk 1,000).
        self._pending: list[tuple[float, int, Job]] = []
        self._order = itertools.count()  # ties go in start order
        # Whatever else the clock drives (the new-image schedule), brought up to ``now`` after the jobs.
        self.tick_hooks: list[Callable[[float], None]] = []

    @property
    def region(self) -> str:
        """The first region."""
        return next(iter(self.regions))

    @property
    def first_project(self) -> Project:
        return self.default_project(self.region)

    def default_project(self, region: str) -> Project:
        return self.regions[region][0]

    def project_named(self, name: str, region: str | None = None) -> Project | None:
        candidates = self.regions.get(region, []) if region is not None else self.projects.values()
        return next((p for p in candidates if p.name == name), None)

    def owner_of(self, image_id: str) -> Project | None:
        return next((p for p in self.projects.values() if image_id in p.images), None)

    def shared_with(self, project: Project) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(image, member record) of every image of another project that has ``project`` as a member."""
        found = []
        for image_id, owner_id in self.memberships.get(project.id, {}).items():
            owner = self.projects[owner_id]
            found.append((owner.images[image_id], owner.members[image_id][project.id]))
        return found

    def membership(self, project: Project, image_id: str) -> tuple[Project, dict[str, Any]] | None:
        """The owner and ``project``'s member record when ``image_id`` is shared with ``project``."""
        owner_id = self.memberships.get(project.id, {}).get(image_id)
        if owner_id is None:
            return None
        owner = self.projects[owner_id]
        return owner, owner.members[image_id][project.id]

    def start_job(self, project: Project, job: Job, image: dict[str, Any] | None = None) -> None:
        project.jobs[job.job_id] = job
        if image is not None:
            self.projects[job.image_project_id or project.id].add_image(image)
        if image is not None or job.member_changes:
            self._due(job, job.begin)

    def _due(self, job: Job, at: float) -> None:
        heapq.heappush(self._pending, (at, next(self._order), job))

    def delete_image(self, project: Project, image_id: str) -> None:
        """What deleting an image asks of it (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0706.html
        and the error codes): only its owner deletes it, not while it is being made, and not a protected one."""
        image = project.images.get(image_id)
        if image is None:
            if self.membership(project, image_id):
                raise ImsError("IMG.0092")
            raise ImsError("IMG.0144", status=404)
        if image.get("status") in CREATING_STATUSES:
            raise ImsError("IMG.0090")
        if image.get("protected") is True:
            raise ImsError("IMG.0091")
        self.remove_image(project, image_id)

    def remove_image(self, owner: Project, image_id: str) -> None:
        owner.images.pop(image_id)
        owner.tags.pop(image_id, None)
        for member_id in owner.members.pop(image_id, {}):
            self.memberships.get(member_id, {}).pop(image_id, None)

    def tick(self, now: float) -> None:
        """Bring every job's effects to where its status is at ``now`` (copies move their image along, member
        jobs change the members when they end), then the tick hooks."""
        while self._pending and self._pending[0][0] <= now:
            _, _, job = heapq.heappop(self._pending)
            status = job.status(now)
            if job.member_changes:
                if status in ("INIT", "RUNNING"):
                    self._due(job, job.end)
                else:
                    self._apply_members(job.member_changes, job.end)
                continue
            image = self.projects[job.image_project_id or job.project_id].images.get(job.image_id or "")
            if image is None:  # deleted while its job ran
                continue
            if status == "INIT":
                _set_status(image, "queued", job.begin)
                self._due(job, job.running_at)
            elif status == "RUNNING":
                _set_status(image, "saving", job.running_at)
                self._due(job, job.end)
            else:
                _set_status(image, "active" if status == "SUCCESS" else "killed", job.end)
                if status == "SUCCESS":
                    image["active_at"] = image["updated_at"]
        for hook in self.tick_hooks:
            hook(now)

    def _apply_members(self, changes: Iterable[MemberChange], at: float) -> None:
        stamp = image_time(at)
        for change in changes:
            owner = self.projects[change.owner_id]
            if change.image_id not in owner.images:  # deleted meanwhile
                continue
            members = owner.members.setdefault(change.image_id, {})
            if change.action == "add" and change.member_id not in members:
                members[change.member_id] = {
                    "status": "pending",
                    "created_at": stamp,
                    "updated_at": stamp,
                    "image_id": change.image_id,
                    "member_id": change.member_id,
                    "schema": MEMBER_SCHEMA,
                    "member_type": "project",
                }
                self.memberships.setdefault(change.member_id, {})[change.image_id] = owner.id
            elif change.action == "delete" and change.member_id in members:
                del members[change.member_id]
                self.memberships.get(change.member_id, {}).pop(change.image_id, None)
            elif change.action == "update" and change.member_id in members:
                self.set_member_status(members[change.member_id], change.status, at)
            mark_shared(owner.images[change.image_id], bool(members), at)
            if not members:
                owner.members.pop(change.image_id, None)

    @staticmethod
    def set_member_status(member: dict[str, Any], status: str, at: float) -> None:
        if member["status"] != status:
            member["status"] = status
            member["updated_at"] = image_time(at)


def mark_shared(image: dict[str, Any], shared: bool, at: float) -> None:
    """An image with members is ``shared`` for its owner too; it turns private again with the last one gone
    (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0602.html, ``__imagetype``)."""
    kind = "shared" if shared else "private"
    if image.get("__imagetype") in ("private", "shared") and image["__imagetype"] != kind:
        image["__imagetype"] = image["visibility"] = kind
        image["updated_at"] = image_time(at)


def _set_status(image: dict[str, Any], status: str, at: float) -> None:
    if image["status"] != status:
        image["status"] = status
        image["updated_at"] = image_time(at)
