"""Liveness and readiness probes (no token needed)."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from api.errors import problem
from api.metrics import workers_seen
from api.openapi import errors_doc
from api.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Redis is reachable and a worker was seen recently",
    responses=errors_doc(e503="Redis unreachable, or no worker heartbeat"),
    response_model=Readiness,
)
def readyz(service: ServiceDep, request: Request) -> Readiness | JSONResponse:
    settings = service.settings
    try:
        service.data.ping()
        workers = workers_seen(service.data, settings)
    except redis.RedisError:
        # Anyone may call this probe: say what is wrong, not where Redis is (the exception names host and port).
        return problem(503, "Redis is unreachable", request.url.path)
    if workers == 0:
        message = f"no worker heartbeat in the last {settings.worker_seen_seconds:g}s"
        return problem(503, message, request.url.path)
    return Readiness(status="ready", workers=workers)
