"""Image members: sharing images with other projects of the same region, asynchronously in bulk
(https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0624.html and the pages next to it), and the member
views (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0661.html)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from simulator.config import SimConfig
from simulator.errors import ImsError
from simulator.jobs import (
    ADD_MEMBERS_JOB_TYPE,
    DELETE_MEMBERS_JOB_TYPE,
    UPDATE_MEMBERS_JOB_TYPE,
    Job,
    MemberChange,
)
from simulator.randomness import SeededStreams
from simulator.replication import is_encrypted, is_full_ecs, json_object
from simulator.state import Project, SimState

# Member projects per image, from "Restrictions on Image Sharing" (Huawei's Chinese API reference says 128 and 10;
# https://support.huaweicloud.com/intl/es-us/eu-west-0-api-ims/en-us_topic_0036994316.html says 128).
MAX_MEMBERS = 128
MAX_MEMBERS_FULL_ECS = 10
MEMBER_STATUSES = ("accepted", "rejected")
MEMBERS_SCHEMA = "/v2/schemas/members"
DEFAULT_MEMBER_LIMIT = 500
MAX_MEMBER_LIMIT = 1000


def _id_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ImsError("IMG.0001")
    return list(dict.fromkeys(value))


class Sharing:
    def __init__(self, state: SimState, streams: SeededStreams, config: SimConfig) -> None:
        self.state = state
        self.streams = streams
        self.config = config

    def _owned(self, project: Project, image_id: str) -> dict[str, Any]:
        image = project.images.get(image_id)
        if image is None:
            raise ImsError("IMG.0047" if self.state.membership(project, image_id) else "IMG.0027")
        return image

    def _job(self, project: Project, job_type: str, changes: list[MemberChange], now: float) -> Job:
        job = Job.plan(
            begin=now,
            duration=self.config.member_job_seconds,
            fails=False,
            fail_point=1.0,
            job_id=self.streams.job_id(),
            project_id=project.id,
            job_type=job_type,
            member_changes=tuple(changes),
        )
        self.state.start_job(project, job)
        self.state.tick(now)
        return job

    @staticmethod
    def _pending_additions(project: Project, image_id: str, now: float) -> set[str]:
        """Members that add-jobs still running will bring: they count towards the limit already."""
        return {
            change.member_id
            for job in project.jobs.values()
            if job.job_type == ADD_MEMBERS_JOB_TYPE and job.active(now)
            for change in job.member_changes
            if change.image_id == image_id
        }

    def add(self, project: Project, raw: bytes, now: float) -> Job:
        """``POST /v1/cloudimages/members``: every image and project is checked before the job starts."""
        body = json_object(raw)
        if body.get("domains") or body.get("organizations"):
            raise ImsError("IMG.0105")  # sharing with accounts or organisations is not simulated
        image_ids, member_ids = _id_list(body, "images"), _id_list(body, "projects")
        images = [self._owned(project, image_id) for image_id in image_ids]
        for image in images:
            if image.get("status") != "active":
                raise ImsError("IMG.0046")
            if is_encrypted(image):
                raise ImsError("IMG.0098")
        for member_id in member_ids:
            if member_id == project.id:
                raise ImsError("IMG.0076")
            member = self.state.projects.get(member_id)
            if member is None:
                raise ImsError("IMG.0108")
            if member.region != project.region:
                raise ImsError("IMG.0177")
        for image in images:
            members = set(project.members.get(image["id"], {})) | self._pending_additions(project, image["id"], now)
            limit = MAX_MEMBERS_FULL_ECS if is_full_ecs(image) else MAX_MEMBERS
            if len(members | set(member_ids)) > limit:
                raise ImsError("IMG.0088")
        changes = [
            MemberChange(project.id, image_id, member_id, "add") for image_id in image_ids for member_id in member_ids
        ]
        return self._job(project, ADD_MEMBERS_JOB_TYPE, changes, now)

    def remove(self, project: Project, raw: bytes, now: float) -> Job:
        """``DELETE /v1/cloudimages/members``: members that are not there are removed without complaint."""
        body = json_object(raw)
        image_ids, member_ids = _id_list(body, "images"), _id_list(body, "projects")
        for image_id in image_ids:
            self._owned(project, image_id)
        changes = [
            MemberChange(project.id, image_id, member_id, "delete")
            for image_id in image_ids
            for member_id in member_ids
        ]
        return self._job(project, DELETE_MEMBERS_JOB_TYPE, changes, now)

    def _status_change(self, project: Project, image_id: str, status: Any, vault_id: Any) -> MemberChange:
        if status not in MEMBER_STATUSES or not isinstance(vault_id, (str, type(None))):
            raise ImsError("IMG.0001")
        shared = self.state.membership(project, image_id)
        if shared is None:
            raise ImsError("IMG.0027")
        owner, _member = shared
        if status == "accepted" and is_full_ecs(owner.images[image_id]) and not vault_id:
            raise ImsError("IMG.0184")
        return MemberChange(owner.id, image_id, project.id, "update", status)

    def update(self, project: Project, raw: bytes, now: float) -> Job:
        """``PUT /v1/cloudimages/members``: the recipient accepts or rejects images shared with it."""
        body = json_object(raw)
        image_ids = _id_list(body, "images")
        if body.get("project_id") != project.id:
            raise ImsError("IMG.0067")
        changes = [
            self._status_change(project, image_id, body.get("status"), body.get("vault_id")) for image_id in image_ids
        ]
        return self._job(project, UPDATE_MEMBERS_JOB_TYPE, changes, now)

    def update_one(self, project: Project, image_id: str, member_id: str, raw: bytes, now: float) -> dict[str, Any]:
        """``PUT /v2/images/{image_id}/members/{member_id}`` (the native call): at once, no job."""
        body = json_object(raw)
        if member_id != project.id:
            raise ImsError("IMG.0067")
        change = self._status_change(project, image_id, body.get("status"), body.get("vault_id"))
        owner = self.state.projects[change.owner_id]
        member = owner.members[image_id][project.id]
        self.state.set_member_status(member, change.status, now)
        return member

    def members_visible(self, project: Project, image_id: str) -> list[dict[str, Any]]:
        """The owner sees every member; a member sees only itself; anyone else gets 404 IMG.0144."""
        if image_id in project.images:
            return list(project.members.get(image_id, {}).values())
        shared = self.state.membership(project, image_id)
        if shared is None:
            raise ImsError("IMG.0144", status=404)
        return [shared[1]]

    def member(self, project: Project, image_id: str, member_id: str) -> dict[str, Any]:
        found = [m for m in self.members_visible(project, image_id) if m["member_id"] == member_id]
        if not found:
            raise ImsError("IMG.0144", status=404)
        return found[0]

    def page(self, project: Project, image_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """A page of members: ``limit`` 1..1000 (default 500), ``marker`` the base64 of the last member seen."""
        members = self.members_visible(project, image_id)
        try:
            limit = int(query.get("limit", DEFAULT_MEMBER_LIMIT))
            after = base64.urlsafe_b64decode(query["marker"]).decode() if "marker" in query else None
        except (ValueError, binascii.Error) as exc:
            raise ImsError("IMG.0001") from exc
        if not 1 <= limit <= MAX_MEMBER_LIMIT:
            raise ImsError("IMG.0001")
        ids = [m["member_id"] for m in members]
        start = ids.index(after) + 1 if after in ids else (0 if after is None else len(ids))
        page = members[start : start + limit]
        info: dict[str, Any] = {"current_count": len(page)}
        if start + limit < len(members):
            info["next_marker"] = base64.urlsafe_b64encode(page[-1]["member_id"].encode()).decode()
        return {"members": page, "schema": MEMBERS_SCHEMA, "page_info": info}
