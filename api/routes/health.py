"""Liveness and readiness probes (no token needed)."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from api.errors import problem
from api.metrics import beats_seen, workers_seen
from api.openapi import errors_doc
from api.schemas import Health, Readiness
from worker.data import unavailable
from worker.pressure import REFUSALS

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Redis takes writes, and a worker and beat were seen recently",
    responses=errors_doc(e503="Redis unreachable or refusing writes, or no worker or beat heartbeat"),
    response_model=Readiness,
)
def readyz(service: ServiceDep, request: Request) -> Readiness | JSONResponse:
    settings = service.settings
    try:
        service.data.ping()
    except redis.RedisError:
        # Anyone may call this probe: say what is wrong, not where Redis is (the exception names host and port).
        return problem(503, "Redis is unavailable", request.url.path)
    try:
        service.data.telemetry.probe_writes()
        workers = workers_seen(service.data, settings)
        beats = beats_seen(service.data, settings)
    except redis.RedisError as exc:
        if not unavailable(exc):
            raise
        REFUSALS.refused("/readyz answered 503", exc)
        return problem(503, f"Redis refuses writes: {_reason(exc)}", request.url.path)
    REFUSALS.accepted()
    seen = f"in the last {settings.worker_seen_seconds:g}s"
    if workers == 0:
        return problem(503, f"no worker heartbeat {seen}", request.url.path)
    if beats == 0:
        return problem(503, f"no beat heartbeat {seen}: nothing resends lost steps", request.url.path)
    return Readiness(status="ready", workers=workers, beats=beats)


def _reason(exc: redis.RedisError) -> str:
    """Redis's own words (``OOM command not allowed...``, ``READONLY...``), without redis-py's host and port."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return "it stopped answering"
    return str(exc).split("caused error: ", 1)[-1]
