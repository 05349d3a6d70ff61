"""``/_sim/``: read-only views for tests and operators, and a small control surface. No authentication."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.context import Simulator
from simulator.jobs import peak_concurrency
from simulator.timefmt import job_time


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else {}


def routes(sim: Simulator) -> list[Route]:
    def job_record(job: Any, now: float) -> dict[str, Any]:
        status = job.status(now)
        return {
            "job_id": job.job_id,
            "project_id": job.project_id,
            "status": status,
            "begin_time": job_time(job.begin),
            "end_time": job_time(job.end) if status in ("SUCCESS", "FAIL") else "",
            "begin": job.begin,
            "end": job.end,  # planned when still running; jobs end exactly on time
            "source_image_id": job.source_image_id,
            "image_id": job.image_id,
            "image_name": job.image_name,
            "cmk_id": job.cmk_id,
            "will_fail": job.fails,
        }

    async def health(_request: Request) -> Response:
        now = sim.clock()
        return JSONResponse({
            "status": "ok",
            "region": sim.config.region,
            "project_ids": list(sim.state.projects),
            "seed": sim.config.seed,
            "started_at": job_time(sim.started_at),
            "now": job_time(now),
            "locked_access_keys": sim.auth.locked(now),
        })

    async def stats(_request: Request) -> Response:
        return JSONResponse({**sim.stats.snapshot(), "faults": dict(sim.faults.counts)})

    async def jobs(request: Request) -> Response:
        now = sim.clock()
        sim.state.tick(now)
        wanted = request.query_params.get("project_id")
        if wanted is not None and wanted not in sim.state.projects:
            return _bad(f"unknown project {wanted}", 404)
        projects = [sim.state.projects[wanted]] if wanted else list(sim.state.projects.values())
        selected = sorted((job for p in projects for job in p.jobs.values()), key=lambda job: job.begin)
        return JSONResponse({
            "jobs": [job_record(job, now) for job in selected],
            "peak_concurrent_jobs": {p.id: peak_concurrency(p.jobs.values()) for p in projects},
        })

    async def projects(_request: Request) -> Response:
        now = sim.clock()
        sim.state.tick(now)
        return JSONResponse({"projects": [
            {**project.summary(now), "request_rate": sim.knobs.request_rate}
            for project in sim.state.projects.values()
        ]})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = await _json_body(request)
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of knob: value")
                sim.knobs.update(changes)
            except ValueError as exc:
                return _bad(str(exc))
        return JSONResponse(sim.knobs.as_dict())

    async def revoke_tokens(request: Request) -> Response:
        try:
            body = await _json_body(request)
        except ValueError:
            return _bad("send {} to revoke every token, or {\"token\": \"...\"}")
        token = body.get("token") if isinstance(body, dict) else None
        return JSONResponse({"revoked": sim.tokens.revoke(token)})

    return [
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/stats", stats, methods=["GET"]),
        Route("/_sim/jobs", jobs, methods=["GET"]),
        Route("/_sim/projects", projects, methods=["GET"]),
        Route("/_sim/faults", faults, methods=["GET", "POST"]),
        Route("/_sim/tokens/revoke", revoke_tokens, methods=["POST"]),
    ]
