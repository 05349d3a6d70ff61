"""Liveness and readiness probes (no token needed)."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from api.metrics import workers_seen
from api.schemas import ErrorResponse, Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Redis is reachable and a worker was seen recently",
    responses={503: {"model": ErrorResponse, "description": "Redis unreachable, or no worker heartbeat"}},
    response_model=Readiness,
)
def readyz(service: ServiceDep) -> Readiness | JSONResponse:
    settings = service.settings
    try:
        service.data.ping()
        workers = workers_seen(service.data, settings)
    except redis.RedisError as exc:
        return JSONResponse({"message": f"Redis is unreachable: {exc}"}, status_code=503)
    if workers == 0:
        message = f"no worker heartbeat in the last {settings.worker_seen_seconds:g}s"
        return JSONResponse({"message": message}, status_code=503)
    return Readiness(status="ready", workers=workers)
