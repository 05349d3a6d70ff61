"""``/_sim/``: read-only views for tests and operators, and a small control surface. No authentication."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.catalog.records import tag_pairs
from simulator.config import AgencySpec
from simulator.context import Simulator
from simulator.errors import ImsError
from simulator.gateway import region_endpoints
from simulator.jobs import CROSS_REGION, IN_REGION, Job, peak_concurrency
from simulator.newimages import NUMBER, ImageSpec, NoRoom
from simulator.outage import MODES
from simulator.state import Project
from simulator.timefmt import job_time


class BadControl(ValueError):
    """A control request that cannot be applied; answered 400 (or ``status``) with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise BadControl("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadControl("send a JSON object")
    return body


def job_record(job: Job, now: float) -> dict[str, Any]:
    status = job.status(now)
    return {
        "job_id": job.job_id,
        "job_type": job.job_type,
        "project_id": job.project_id,
        "status": status,
        "begin_time": job_time(job.begin),
        "end_time": job_time(job.end) if status in ("SUCCESS", "FAIL") else "",
        "begin": job.begin,
        "end": job.end,  # planned when still running; jobs end exactly on time
        "source_image_id": job.source_image_id,
        "image_id": job.image_id,
        "image_name": job.image_name,
        "image_project_id": job.image_project_id,
        "cmk_id": job.cmk_id,
        "will_fail": job.fails,
        "slot": job.slot,
        "external": job.external,
    }


def _regions_view(sim: Simulator, request: Request) -> dict[str, Any]:
    endpoints = region_endpoints(sim, request)
    view = {}
    for region, projects in sim.state.regions.items():
        default = projects[0]
        view[region] = {
            "endpoint": endpoints[region],
            "project_id": default.id,
            "project_name": default.name,
            "port": sim.ports[region],
            "projects": [{"project_id": p.id, "project_name": p.name} for p in projects],
        }
    return view


def _agency_view(agency: AgencySpec) -> dict[str, Any]:
    def regions(granted: frozenset[str] | None) -> Any:
        return "*" if granted is None else sorted(granted)

    return {"name": agency.name, "regions": regions(agency.regions), "cbr_regions": regions(agency.cbr_regions)}


def _agency_from(body: dict[str, Any], known_regions: set[str]) -> AgencySpec:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise BadControl("give the agency's 'name'")

    def granted(field: str, default: Any) -> frozenset[str] | None:
        value = body.get(field, default)
        if value == "*":
            return None
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise BadControl(f"'{field}' is \"*\" or a list of region names")
        unknown = sorted(set(value) - known_regions)
        if unknown:
            raise BadControl(f"'{field}': regions not served: {unknown}")
        return frozenset(value)

    regions = granted("regions", [])
    return AgencySpec(name, regions, granted("cbr_regions", "*" if regions is None else sorted(regions or [])))


def _project_changes(project: Project, body: dict[str, Any]) -> None:
    limits = ("image_quota", "job_limit", "cross_region_job_limit")
    unknown = sorted(set(body) - set(limits))
    if unknown:
        raise BadControl(f"unknown fields {unknown}; fields are {list(limits)}")
    for name, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadControl(f"{name} must be an integer >= 0")
    for name, value in body.items():
        setattr(project, name, value)


NEW_IMAGE_FIELDS = ("count", "project_id", "name", "encrypted", "tags")
MAX_NEW_IMAGES = 1000  # per request: a guard against a typo, not a rule of IMS


def _new_images_request(body: dict[str, Any]) -> tuple[int, ImageSpec]:
    """``POST /_sim/images``'s count and what the images are to be; ``BadControl`` names the field and the rule."""
    unknown = sorted(set(body) - set(NEW_IMAGE_FIELDS))
    if unknown:
        raise BadControl(f"unknown fields {unknown}; fields are {list(NEW_IMAGE_FIELDS)}")
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_NEW_IMAGES:
        raise BadControl(f"count must be an integer from 1 to {MAX_NEW_IMAGES}")
    template = body.get("name")
    if template is not None and (not isinstance(template, str) or not template or template.count(NUMBER) > 1):
        raise BadControl(f"name must be a non-empty string, with {NUMBER} at most once")
    encrypted = body.get("encrypted", False)
    if not isinstance(encrypted, bool):
        raise BadControl("encrypted must be true or false")
    tags = body.get("tags", {})
    if not isinstance(tags, dict):
        raise BadControl('tags must be an object {"key": "value"}')
    try:
        tag_pairs(tags)
    except ValueError as exc:
        raise BadControl(f"tags: {exc}") from exc
    return count, ImageSpec(template, encrypted, tags)


def routes(sim: Simulator) -> list[Route]:
    def project_or_404(project_id: str) -> Project:
        project = sim.state.projects.get(project_id)
        if project is None:
            raise BadControl(f"unknown project {project_id}", 404)
        return project

    async def health(_request: Request) -> Response:
        now = sim.clock()
        return JSONResponse(
            {
                "status": "ok",
                "region": sim.config.region,
                "regions": list(sim.state.regions),
                "project_ids": list(sim.state.projects),
                "seed": sim.config.seed,
                "started_at": job_time(sim.started_at),
                "now": job_time(now),
                "locked_access_keys": sim.auth.locked(now),
            }
        )

    async def stats(_request: Request) -> Response:
        sim.state.tick(sim.clock())  # scheduled images due by now are counted
        return JSONResponse(
            {**sim.stats.snapshot(), "faults": dict(sim.faults.counts), "new_images": dict(sim.new_images.counts)}
        )

    async def jobs(request: Request) -> Response:
        now = sim.clock()
        sim.state.tick(now)
        wanted = request.query_params.get("project_id")
        projects = [project_or_404(wanted)] if wanted else list(sim.state.projects.values())
        selected = sorted((job for p in projects for job in p.jobs.values()), key=lambda job: job.begin)
        return JSONResponse(
            {
                "jobs": [job_record(job, now) for job in selected],
                "peak_concurrent_jobs": {p.id: peak_concurrency(p.slot_jobs([IN_REGION])) for p in projects},
                "peak_concurrent_cross_region_jobs": {
                    p.id: peak_concurrency(p.slot_jobs([CROSS_REGION])) for p in projects
                },
            }
        )

    async def projects(_request: Request) -> Response:
        now = sim.clock()
        sim.state.tick(now)
        return JSONResponse(
            {
                "projects": [
                    {**project.summary(now), "request_rate": sim.knobs.request_rate}
                    for project in sim.state.projects.values()
                ]
            }
        )

    async def change_project(request: Request) -> Response:
        project = project_or_404(request.path_params["project_id"])
        _project_changes(project, await _json_object(request))
        now = sim.clock()
        sim.state.tick(now)
        return JSONResponse({**project.summary(now), "request_rate": sim.knobs.request_rate})

    async def delete_images(request: Request) -> Response:
        """Delete images as their owner would (the same refusals), wherever they are."""
        image_ids = (await _json_object(request)).get("image_ids")
        if not isinstance(image_ids, list) or not all(isinstance(i, str) for i in image_ids):
            raise BadControl('send {"image_ids": ["<id>", ...]}')
        now = sim.clock()
        sim.state.tick(now)
        deleted, refused = [], {}
        for image_id in image_ids:
            owner = sim.state.owner_of(image_id)
            try:
                if owner is None:
                    raise ImsError("IMG.0144", status=404)
                sim.state.delete_image(owner, image_id)
                deleted.append(image_id)
            except ImsError as exc:
                refused[image_id] = exc.code
        return JSONResponse({"deleted": deleted, "refused": refused})

    async def add_images(request: Request) -> Response:
        """Add private images now, as the project's users would (see simulator.newimages)."""
        body = await _json_object(request)
        count, spec = _new_images_request(body)
        project_id = body.get("project_id", sim.state.first_project.id)
        if not isinstance(project_id, str):
            raise BadControl("project_id must be a project ID string")
        project = project_or_404(project_id)
        now = sim.clock()
        sim.state.tick(now)
        try:
            made = sim.new_images.request(project, count, spec, now)
        except NoRoom as exc:
            raise BadControl(str(exc), 409) from exc
        except ValueError as exc:
            raise BadControl(str(exc)) from exc
        return JSONResponse({"images": [{key: image[key] for key in ("id", "name", "created_at")} for image in made]})

    async def external_jobs(request: Request) -> Response:
        body = await _json_object(request)
        unknown = sorted(set(body) - {"project_id", "region", "count", "seconds", "mode"})
        if unknown:
            raise BadControl(f"unknown fields {unknown}")
        region = body.get("region", sim.state.region)
        if region not in sim.state.regions:
            raise BadControl(f"unknown region {region!r}")
        project = project_or_404(body.get("project_id") or sim.state.default_project(region).id)
        if project.region != region and "region" in body:
            raise BadControl(f"project {project.id} is in {project.region}, not {region}")
        mode = body.get("mode", IN_REGION)
        count, seconds = body.get("count", 1), body.get("seconds")
        if mode not in (IN_REGION, CROSS_REGION):
            raise BadControl(f"mode is {IN_REGION!r} or {CROSS_REGION!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise BadControl("count must be an integer >= 1")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise BadControl("seconds must be a number > 0")
        now = sim.clock()
        sim.state.tick(now)
        free = sim.replicator.free_slots(project, mode, now)
        if count > free:
            # IMS would refuse them too: they are copies like any other.
            raise BadControl(f"only {free} {mode} place(s) free in project {project.id}", 409)
        jobs = sim.replicator.hold_slots(project, mode, count, float(seconds), now)
        return JSONResponse({"project_id": project.id, "jobs": [job_record(job, now) for job in jobs]})

    async def outage(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_object(request)
            mode, seconds = body.get("mode"), body.get("seconds")
            regions = [body["region"]] if body.get("region") is not None else list(sim.state.regions)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise BadControl("seconds must be a number >= 0 (0 ends the outage)")
            if seconds > 0 and mode not in MODES:
                raise BadControl(f"mode is one of {list(MODES)}")
            if not set(regions) <= set(sim.state.regions):
                raise BadControl(f"unknown region {regions[0]!r}")
            sim.outages.start(mode or "", float(seconds), regions)
        return JSONResponse({"outages": sim.outages.view()})

    async def regions(request: Request) -> Response:
        return JSONResponse(_regions_view(sim, request))

    async def temporary_credentials(_request: Request) -> Response:
        # The whole credentials, as a test of this machine must find them wherever they leak to; a control endpoint
        # of the simulator's own, on loopback, like the rest of /_sim.
        keys = [
            {"access": key.access_key, "secret": key.secret_key, "securitytoken": key.security_token}
            for key in sim.temporary_keys.issued()
        ]
        return JSONResponse({"credentials": keys})

    async def agencies(request: Request) -> Response:
        if request.method == "POST":
            agency = _agency_from(await _json_object(request), set(sim.state.regions))
            sim.state.agencies[agency.name] = agency
        return JSONResponse({"agencies": [_agency_view(a) for a in sim.state.agencies.values()]})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                sim.knobs.update(await _json_object(request))
            except ValueError as exc:
                return _bad(str(exc))
        return JSONResponse(sim.knobs.as_dict())

    async def revoke_tokens(request: Request) -> Response:
        try:
            body = await _json_object(request)
        except BadControl:
            return _bad('send {} to revoke every token, or {"token": "..."}')
        return JSONResponse({"revoked": sim.tokens.revoke(body.get("token"))})

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except BadControl as exc:
                return _bad(str(exc), exc.status)

        return endpoint

    return [
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/stats", stats, methods=["GET"]),
        Route("/_sim/jobs", guarded(jobs), methods=["GET"]),
        Route("/_sim/projects", projects, methods=["GET"]),
        Route("/_sim/projects/{project_id}", guarded(change_project), methods=["POST"]),
        Route("/_sim/images", guarded(add_images), methods=["POST"]),
        Route("/_sim/images/delete", guarded(delete_images), methods=["POST"]),
        Route("/_sim/regions", regions, methods=["GET"]),
        Route("/_sim/temporary-credentials", temporary_credentials, methods=["GET"]),
        Route("/_sim/external_jobs", guarded(external_jobs), methods=["POST"]),
        Route("/_sim/outage", guarded(outage), methods=["GET", "POST"]),
        Route("/_sim/agencies", guarded(agencies), methods=["GET", "POST"]),
        Route("/_sim/faults", faults, methods=["GET", "POST"]),
        Route("/_sim/tokens/revoke", revoke_tokens, methods=["POST"]),
    ]
