"""Copies: in-region (``/copy``) and cross-region (``/cross_region_copy``), each checking in the order
docs/simulator.md gives, then a job and a new image.

Rules from Huawei's pages: in-region https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0627.html,
cross-region https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0628.html, error codes
https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0908.html.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from simulator.catalog.records import GIB
from simulator.config import FaultKnobs, SimConfig
from simulator.errors import ImsError
from simulator.jobs import CROSS_REGION, CROSS_REGION_JOB_TYPE, IN_REGION, JOB_TYPE, Job
from simulator.randomness import SeededStreams
from simulator.state import Project, SimState
from simulator.timefmt import image_time

NAME_MAX = 128
DESCRIPTION_MAX = 1024
MAX_COPY_BYTES = 128 * GIB
# Cross-region copies may be larger out of these regions (CN-Guangzhou, CN-Shanghai1, CN-Shanghai2, CN-Beijing4).
LARGE_CROSS_REGION_SOURCES = frozenset({"cn-south-1", "cn-east-3", "cn-east-2", "cn-north-4"})
LARGE_CROSS_REGION_BYTES = 300 * GIB
# Letters, digits, '-', '.', '_', space and Chinese characters (CJK unified ideographs).
NAME_CHARS = re.compile(r"[A-Za-z0-9\u4e00-\u9fff._\- ]+")
DESCRIPTION_FORBIDDEN = re.compile(r"[\r\n<>]")
# A copy starts afresh: encrypted only if asked, not a full-ECS or imported image, not yet active.
NOT_INHERITED = ("__system__cmkid", "__whole_image", "__root_origin", "active_at")
DEFAULT_ENTERPRISE_PROJECT = "0"  # ``enterprise_project_id`` absent or "0": the default one, no enterprise project


@dataclass(frozen=True)
class CopyRequest:
    name: str
    description: str
    cmk_id: str | None
    enterprise_project_id: str


@dataclass(frozen=True)
class CrossRegionRequest:
    name: str
    description: str
    region: str
    project_name: str
    agency_name: str
    vault_id: str | None


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object: ``IMG.0007`` when empty, ``IMG.0001`` when not JSON or not an object."""
    if not raw.strip():
        raise ImsError("IMG.0007")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ImsError("IMG.0001") from exc
    if not isinstance(body, dict):
        raise ImsError("IMG.0001")
    return body


def check_image_name(name: Any) -> str:
    """An image name as IMS takes it: present (IMG.0013), at most 128 characters (IMG.0002), of the allowed
    characters and without leading or trailing spaces (IMG.0003)."""
    if name is None or name == "":
        raise ImsError("IMG.0013")
    if not isinstance(name, str):
        raise ImsError("IMG.0003")
    if len(name) > NAME_MAX:
        raise ImsError("IMG.0002")
    if not NAME_CHARS.fullmatch(name) or name != name.strip(" "):
        raise ImsError("IMG.0003")
    return name


def _name_and_description(body: dict[str, Any]) -> tuple[str, str]:
    name = check_image_name(body.get("name"))
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise ImsError("IMG.0054")
    if len(description) > DESCRIPTION_MAX:
        raise ImsError("IMG.0004")
    if DESCRIPTION_FORBIDDEN.search(description):
        raise ImsError("IMG.0054")
    return name, description


def parse_copy_body(raw: bytes) -> CopyRequest:
    """JSON, name and description checks, in that order."""
    body = json_object(raw)
    name, description = _name_and_description(body)
    cmk_id = body.get("cmk_id") or None
    enterprise_project_id = body.get("enterprise_project_id") or "0"
    if not isinstance(cmk_id, (str, type(None))) or not isinstance(enterprise_project_id, str):
        raise ImsError("IMG.0001")
    return CopyRequest(name, description, cmk_id, enterprise_project_id)


def _text_field(body: dict[str, Any], name: str, code: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ImsError(code)
    return value


def parse_cross_region_body(raw: bytes) -> CrossRegionRequest:
    """JSON, name, description, then the destination fields: ``region`` (IMG.0147), ``project_name``
    (IMG.0104), ``agency_name`` (IMG.0179) present and strings, ``vault_id`` a string if given."""
    body = json_object(raw)
    name, description = _name_and_description(body)
    region = _text_field(body, "region", "IMG.0147")
    project_name = _text_field(body, "project_name", "IMG.0104")
    agency_name = _text_field(body, "agency_name", "IMG.0179")
    vault_id = body.get("vault_id") or None
    if not isinstance(vault_id, (str, type(None))):
        raise ImsError("IMG.0001")
    return CrossRegionRequest(name, description, region, project_name, agency_name, vault_id)


def is_full_ecs(image: dict[str, Any]) -> bool:
    return str(image.get("__whole_image", "")).lower() == "true" or str(image.get("__data_origin") or "").startswith(
        "server_backup,"
    )


def is_iso(image: dict[str, Any]) -> bool:
    return image.get("disk_format") == "iso" or image.get("virtual_env_type") == "IsoImage"


def is_encrypted(image: dict[str, Any]) -> bool:
    return bool(image.get("__system__cmkid"))


def image_bytes(image: dict[str, Any]) -> int:
    try:
        return int(image.get("__image_size") or 0)
    except ValueError:
        return 0


def cross_region_max_bytes(source_region: str, override_gb: float) -> float:
    if override_gb > 0:
        return override_gb * GIB
    return LARGE_CROSS_REGION_BYTES if source_region in LARGE_CROSS_REGION_SOURCES else MAX_COPY_BYTES


class Replicator:
    def __init__(self, state: SimState, streams: SeededStreams, knobs: FaultKnobs, config: SimConfig) -> None:
        self.state = state
        self.streams = streams
        self.knobs = knobs
        self.config = config

    def _pools(self, slot: str) -> tuple[str, ...]:
        """The pools whose running jobs count against a new job's limit."""
        return (IN_REGION, CROSS_REGION) if self.config.shared_job_pool else (slot,)

    def _source(self, project: Project, source_id: str) -> tuple[dict[str, Any], bool]:
        """The image to copy and whether it is shared with ``project`` (rather than its own)."""
        source = project.images.get(source_id)
        if source is not None:
            return source, False
        shared = self.state.membership(project, source_id)
        if shared is None:
            raise ImsError("IMG.0027")
        owner, member = shared
        if member["status"] != "accepted":
            raise ImsError("IMG.0196")
        return owner.images[source_id], True

    def submit(self, project: Project, source_id: str, raw_body: bytes, now: float) -> Job:
        """Check the request and the source; on success start the job and create the new image."""
        request = parse_copy_body(raw_body)
        source, shared = self._source(project, source_id)
        if shared and request.enterprise_project_id != DEFAULT_ENTERPRISE_PROJECT:
            # Shared images are copied in IAM projects only, not enterprise projects (ims-contract.md §12;
            # https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_appendix_09.html). No code of its own is
            # documented: IMG.0155 is the enterprise-project refusal of the error table (docs/simulator.md).
            raise ImsError("IMG.0155")
        if source.get("status") != "active":
            raise ImsError("IMG.0046")
        if is_full_ecs(source):
            raise ImsError("IMG.0130")
        if is_iso(source):
            raise ImsError("IMG.0167")
        if image_bytes(source) > MAX_COPY_BYTES:
            raise ImsError("IMG.0059")
        if request.cmk_id is not None:
            if shared and self.config.unencrypted_shared_copies:
                raise ImsError("IMG.0197")
            key = project.keys.get(request.cmk_id)
            if key is None:
                raise ImsError("IMG.0095")
            if key["key_state"] != "2":
                raise ImsError("IMG.0097")
        if project.quota_used() >= project.image_quota:
            raise ImsError("IMG.0015")
        if len(project.active_jobs(now, self._pools(IN_REGION))) >= project.job_limit:
            raise ImsError("IMG.0060")
        return self._start(project, project, source, request, now, JOB_TYPE)

    def submit_cross_region(self, project: Project, source_id: str, raw_body: bytes, now: float) -> Job:
        """The cross-region checks (docs/simulator.md gives their order); the job stays in ``project``'s region
        and the new image appears in the destination project."""
        request = parse_cross_region_body(raw_body)
        if request.region not in self.state.regions:
            raise ImsError("IMG.0147")
        if request.region == project.region:
            raise ImsError("IMG.0142")
        destination = self.state.project_named(request.project_name, request.region)
        if destination is None:
            raise ImsError("IMG.0145")
        agency = self.state.agencies.get(request.agency_name)
        if agency is None:
            raise ImsError("IMG.0179")
        source = project.images.get(source_id)
        if source is None:
            # Another project's image shared with this one: only its owner may copy it out of the region.
            raise ImsError("IMG.0047" if self.state.membership(project, source_id) else "IMG.0027")
        if source.get("status") != "active":
            raise ImsError("IMG.0046")
        if is_encrypted(source):
            raise ImsError("IMG.0143")
        if is_iso(source):
            raise ImsError("IMG.0167")
        full_ecs = is_full_ecs(source)
        if full_ecs and not request.vault_id:
            raise ImsError("IMG.0184")
        if not agency.allows(destination.region, full_ecs=full_ecs):
            raise ImsError("IMG.0151")
        if image_bytes(source) > cross_region_max_bytes(project.region, self.config.cross_region_max_gb):
            raise ImsError("IMG.0146")
        if destination.quota_used() >= destination.image_quota:
            raise ImsError("IMG.0015")
        pools = self._pools(CROSS_REGION)
        running = len(project.active_jobs(now, pools))
        if len(project.active_jobs(now, [CROSS_REGION])) >= project.cross_region_job_limit or (
            self.config.shared_job_pool and running >= project.job_limit
        ):
            raise ImsError("IMG.0149")
        copy_request = CopyRequest(request.name, request.description, None, DEFAULT_ENTERPRISE_PROJECT)
        job = self._start(project, destination, source, copy_request, now, CROSS_REGION_JOB_TYPE)
        if full_ecs:
            destination.images[job.image_id or ""]["__whole_image"] = "true"
        return job

    def free_slots(self, project: Project, slot: str, now: float) -> int:
        """Places left for a new job of the kind ``slot`` in ``project`` (as the checks above count them)."""
        running = len(project.active_jobs(now, self._pools(slot)))
        if slot == IN_REGION:
            return max(0, project.job_limit - running)
        free = project.cross_region_job_limit - len(project.active_jobs(now, [CROSS_REGION]))
        if self.config.shared_job_pool:
            free = min(free, project.job_limit - running)
        return max(0, free)

    def hold_slots(self, project: Project, slot: str, count: int, seconds: float, now: float) -> list[Job]:
        """Copies started outside the client under test (the console, another tool): ordinary jobs of the
        project that hold places for ``seconds`` and then succeed; they make no image, so the quota is untouched.
        They take no draws from the job stream, so the fates of the client's own copies do not move."""
        job_type = JOB_TYPE if slot == IN_REGION else CROSS_REGION_JOB_TYPE
        jobs = [
            Job.plan(
                begin=now,
                duration=seconds,
                fails=False,
                fail_point=1.0,
                job_id=self.streams.job_id(),
                project_id=project.id,
                job_type=job_type,
                external=True,
            )
            for _ in range(count)
        ]
        for job in jobs:
            self.state.start_job(project, job)
        return jobs

    def _start(
        self,
        project: Project,
        destination: Project,
        source: dict[str, Any],
        request: CopyRequest,
        now: float,
        job_type: str,
    ) -> Job:
        # Always two draws per accepted copy, so the n-th copy's fate depends only on the seed and n.
        fail_draw, fail_point = self.streams.jobs.random(), self.streams.jobs.uniform(0.3, 0.95)
        duration = self.config.copy_seconds + self.config.copy_seconds_per_gb * image_bytes(source) / GIB
        image = new_image(source, request, self.streams.image_id(), destination.id, project.region, now)
        job = Job.plan(
            begin=now,
            duration=duration,
            fails=fail_draw < self.knobs.fail_rate,
            fail_point=fail_point,
            job_id=self.streams.job_id(),
            project_id=project.id,
            source_image_id=source["id"],
            image_id=image["id"],
            image_name=request.name,
            cmk_id=request.cmk_id,
            job_type=job_type,
            image_project_id=destination.id,
        )
        self.state.start_job(project, job, image)
        self.state.tick(now)
        return job


def new_image(
    source: dict[str, Any], request: CopyRequest, image_id: str, project_id: str, region: str, now: float
) -> dict[str, Any]:
    """The copy's record (docs/simulator.md, "Jobs and new images"): source attributes, request fields, Fast
    Create on; ``region`` is the source's, named in ``__data_origin``."""
    record = {k: v for k, v in copy.deepcopy(source).items() if k not in NOT_INHERITED}
    stamp = image_time(now)
    record.update(
        {
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
        }
    )
    if request.cmk_id is not None:
        record["__system__cmkid"] = request.cmk_id
    return record
