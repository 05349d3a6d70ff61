"""The submission API: ``python -m uvicorn api.app:create_app --factory --host H --port P``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from prometheus_client import CollectorRegistry, ProcessCollector

from api.body_limit import BodySizeLimit
from api.deps import require_token
from api.enqueue import Enqueuer
from api.errors import install_error_handlers
from api.metrics import RedisCollector
from api.openapi import add_body_schemas
from api.routes import batches, health, metrics, plans, replications
from api.schemas import BatchRequest, ErrorResponse
from api.service import ReplicationService
from config.logging import RedactSecrets, configure_logging
from config.settings import Settings, SettingsError, load_settings
from worker.data import open_data_layer
from worker.domain.spec import ItemSpec

DESCRIPTION = """
Bulk in-region replication of Huawei Cloud IMS images. Submit a batch (or one image), get `202` with IDs at once,
then follow each item to its verdict: the new image ID, or a stable reason code and a message.

Every `/v1` call needs `Authorization: Bearer <token>`. `/healthz`, `/readyz` and `/metrics` are open.
"""

V1_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"},
    422: {"model": ErrorResponse, "description": "A parameter or the body breaks a rule (each one is listed)"},
    503: {"model": ErrorResponse, "description": "Redis is unreachable; nothing was changed"},
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Without ``settings`` (the uvicorn entry point) they are read from the environment and
    logging is set up with secret redaction; tests pass their own settings and keep their own logging."""
    if settings is None:
        settings = load_settings()
        _setup_logging(settings)
    if not settings.api_tokens:
        raise SettingsError("no API tokens configured: set IMSREP_API_TOKENS (comma-separated) to at least one token")

    data = open_data_layer(settings.redis_url, settings.key_prefix)
    enqueuer = Enqueuer(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        enqueuer.close()
        data.close()

    app = FastAPI(
        title="ims-replicator",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = ReplicationService(data, enqueuer, settings)
    app.state.metrics = CollectorRegistry()
    app.state.metrics.register(RedisCollector(data, settings))
    ProcessCollector(registry=app.state.metrics)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=V1_ERRORS)
    v1.include_router(batches.router)
    v1.include_router(replications.router)
    v1.include_router(plans.router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    install_error_handlers(app)
    add_body_schemas(app, [BatchRequest, ItemSpec])
    return app


def _setup_logging(settings: Settings) -> None:
    secrets = settings.secret_values()
    configure_logging(settings.log_level, secrets)
    # uvicorn's loggers have handlers of their own; mask secrets there too.
    for name in ("uvicorn", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(RedactSecrets(secrets))
