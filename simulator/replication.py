"""In-region copy: the contract's checks in checklist order (ims-contract.md 9.1), then a job and a new image."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from simulator.catalog.records import GIB
from simulator.config import FaultKnobs
from simulator.errors import ImsError
from simulator.jobs import Job
from simulator.randomness import SeededStreams
from simulator.state import Project, SimState
from simulator.timefmt import image_time

NAME_MAX = 128
DESCRIPTION_MAX = 1024
MAX_COPY_BYTES = 128 * GIB
# Letters, digits, '-', '.', '_', space and Chinese characters (CJK unified ideographs).
NAME_CHARS = re.compile(r"[A-Za-z0-9\u4e00-\u9fff._\- ]+")
DESCRIPTION_FORBIDDEN = re.compile(r"[\r\n<>]")
# A copy starts afresh: encrypted only if asked, not a full-ECS or imported image, not yet active.
NOT_INHERITED = ("__system__cmkid", "__whole_image", "__root_origin", "active_at")


@dataclass(frozen=True)
class CopyRequest:
    name: str
    description: str
    cmk_id: str | None
    enterprise_project_id: str


def parse_copy_body(raw: bytes) -> CopyRequest:
    """JSON, name and description checks, in that order."""
    if not raw.strip():
        raise ImsError("IMG.0007")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ImsError("IMG.0001") from exc
    if not isinstance(body, dict):
        raise ImsError("IMG.0001")
    name = body.get("name")
    if name is None or name == "":
        raise ImsError("IMG.0013")
    if not isinstance(name, str):
        raise ImsError("IMG.0003")
    if len(name) > NAME_MAX:
        raise ImsError("IMG.0002")
    if not NAME_CHARS.fullmatch(name) or name != name.strip(" "):
        raise ImsError("IMG.0003")
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise ImsError("IMG.0054")
    if len(description) > DESCRIPTION_MAX:
        raise ImsError("IMG.0004")
    if DESCRIPTION_FORBIDDEN.search(description):
        raise ImsError("IMG.0054")
    cmk_id = body.get("cmk_id") or None
    enterprise_project_id = body.get("enterprise_project_id") or "0"
    if not isinstance(cmk_id, (str, type(None))) or not isinstance(enterprise_project_id, str):
        raise ImsError("IMG.0001")
    return CopyRequest(name, description, cmk_id, enterprise_project_id)


def is_full_ecs(image: dict[str, Any]) -> bool:
    return str(image.get("__whole_image", "")).lower() == "true" or str(
        image.get("__data_origin") or "").startswith("server_backup,")


def is_iso(image: dict[str, Any]) -> bool:
    return image.get("disk_format") == "iso" or image.get("virtual_env_type") == "IsoImage"


def image_bytes(image: dict[str, Any]) -> int:
    try:
        return int(image.get("__image_size") or 0)
    except ValueError:
        return 0


class Replicator:
    def __init__(self, state: SimState, streams: SeededStreams, knobs: FaultKnobs, *, copy_seconds: float,
                 copy_seconds_per_gb: float) -> None:
        self.state = state
        self.streams = streams
        self.knobs = knobs
        self.copy_seconds = copy_seconds
        self.copy_seconds_per_gb = copy_seconds_per_gb

    def submit(self, project: Project, source_id: str, raw_body: bytes, now: float) -> Job:
        """Check the request and the source; on success start the job and create the new image."""
        request = parse_copy_body(raw_body)
        source = project.images.get(source_id)
        if source is None:
            raise ImsError("IMG.0027")
        if source.get("status") != "active":
            raise ImsError("IMG.0046")
        if is_full_ecs(source):
            raise ImsError("IMG.0130")
        if is_iso(source):
            raise ImsError("IMG.0167")
        if image_bytes(source) > MAX_COPY_BYTES:
            raise ImsError("IMG.0059")
        if request.cmk_id is not None:
            key = project.keys.get(request.cmk_id)
            if key is None:
                raise ImsError("IMG.0095")
            if key["key_state"] != "2":
                raise ImsError("IMG.0097")
        if project.quota_used() >= project.image_quota:
            raise ImsError("IMG.0015")
        if len(project.active_jobs(now)) >= project.job_limit:
            raise ImsError("IMG.0060")
        return self._start(project, source, request, now)

    def _start(self, project: Project, source: dict[str, Any], request: CopyRequest, now: float) -> Job:
        # Always two draws per accepted copy, so the n-th copy's fate depends only on the seed and n.
        fail_draw, fail_point = self.streams.jobs.random(), self.streams.jobs.uniform(0.3, 0.95)
        duration = self.copy_seconds + self.copy_seconds_per_gb * image_bytes(source) / GIB
        image = new_image(source, request, self.streams.image_id(), project.id, self.state.region, now)
        job = Job.plan(
            begin=now, duration=duration, fails=fail_draw < self.knobs.fail_rate, fail_point=fail_point,
            job_id=self.streams.job_id(), project_id=project.id, source_image_id=source["id"],
            image_id=image["id"], image_name=request.name, cmk_id=request.cmk_id,
        )
        self.state.start_job(project, job, image)
        self.state.tick(now)
        return job


def new_image(source: dict[str, Any], request: CopyRequest, image_id: str, project_id: str, region: str,
              now: float) -> dict[str, Any]:
    """The copy's record (ims-contract.md 9.3): source attributes, request fields, Fast Create on."""
    record = {k: v for k, v in copy.deepcopy(source).items() if k not in NOT_INHERITED}
    stamp = image_time(now)
    record.update({
        "id": image_id,
        "name": request.name,
        "__description": request.description,
        "status": "queued",
        "visibility": "private",
        "__imagetype": "private",
        "owner": project_id,
        "protected": False,
        "tags": [],
        "__lazyloading": "true",
        "__data_origin": f"image,{region},{source['id']}",
        "__originalimagename": source["id"],
        "__backup_id": "",
        "__productcode": "",
        "enterprise_project_id": request.enterprise_project_id,
        "file": f"/v2/images/{image_id}/file",
        "self": f"/v2/images/{image_id}",
        "created_at": stamp,
        "updated_at": stamp,
    })
    if request.cmk_id is not None:
        record["__system__cmkid"] = request.cmk_id
    return record
