"""The submission API: ``python -m uvicorn api.app:create_app --factory --host H --port P``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from prometheus_client import CollectorRegistry, Info, ProcessCollector

from api.accounts import AccountService
from api.auditing import AuditCalls
from api.auditor import Auditor
from api.body_limit import BodySizeLimit
from api.deps import authenticate, known_query_only, within_rate
from api.enqueue import Enqueuer
from api.errors import install_error_handlers
from api.metrics import RedisCollector
from api.openapi import add_body_schemas, errors_doc
from api.policies import PolicyService
from api.policy_schemas import PolicyRequest
from api.principals import PrincipalRegistry
from api.request_id import RequestIds
from api.routes import accounts, audit, batches, health, metrics, plans, policies, replications
from api.schemas import BatchRequest
from api.service import ReplicationService
from config.logging import configure_logging
from config.settings import Settings, load_settings
from config.version import VERSION
from worker.data import open_data_layer, redis_target
from worker.domain.spec import ItemSpec
from worker.pressure import REFUSALS

DESCRIPTION = """
Bulk replication of Huawei Cloud IMS images, in a region or across regions. Submit a batch (or one image), get `202`
with IDs at once, then follow each item to its verdict: the new image ID, or a stable reason code and a message.

Every `/v1` call needs `Authorization: Bearer <token>`: a principal's token, whose role (reader, submitter, operator,
admin) says what it may do and whose accounts what it sees. A batch, plan, item or account outside them answers `404`
(its existence is not disclosed). `/healthz`, `/readyz` and `/metrics` are open.

Errors are RFC 9457 problem details (`application/problem+json`): `title`, `status`, `detail` (one sentence) and,
when a request is refused, `errors` with the `index`, `field` and `rule` of each broken rule. Every answer carries
`X-Request-ID`: the client's own (1-128 visible ASCII characters), or one the API made; the audit trail
(`GET /v1/audit`) records it.
"""

V1_ERRORS: dict[int | str, dict[str, Any]] = errors_doc(
    e401="Missing or wrong bearer token",
    e403="The principal's role does not allow this, or an item names an account outside its scope",
    e422="A parameter or the body breaks a rule (each one is listed in `errors`)",
    e429="The principal is over its request rate, or a submission over its unfinished items (`Retry-After` says "
    "when to send again)",
    e503="Redis is unreachable or refused the request; nothing was changed",
)
# Any route may end in an internal error (logged; the tests show no input reaches it).
APP_ERRORS: dict[int | str, dict[str, Any]] = errors_doc(e500="Internal error; it has been logged")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Without ``settings`` (the uvicorn entry point) they are read from the environment and
    logging is set up with secret redaction; tests pass their own settings and keep their own logging."""
    if settings is None:
        settings = load_settings()
        _setup_logging(settings)
    principals = PrincipalRegistry(settings)  # refuses to start without any principal, or with a bad file
    data = open_data_layer(redis_target(settings), settings.key_prefix)
    enqueuer = Enqueuer(settings)
    REFUSALS.configure("api", data.telemetry.record_refusal)  # episodes of Redis refusing writes, counted

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        enqueuer.close()
        data.close()

    app = FastAPI(
        title="ims-replicator",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=APP_ERRORS,
    )
    app.state.settings = settings
    app.state.principals = principals
    app.state.limits = data.limits
    app.state.service = ReplicationService(data, enqueuer, settings)
    app.state.accounts = AccountService(data, enqueuer, settings)
    app.state.policies = PolicyService(data, enqueuer, settings)
    app.state.metrics = CollectorRegistry()
    app.state.auditor = Auditor(data.audit, settings, app.state.metrics)
    app.state.metrics.register(RedisCollector(data, settings))
    ProcessCollector(registry=app.state.metrics)
    Info("imsrep_build", "The running version of ims-replicator", registry=app.state.metrics).info({"version": VERSION})

    v1_checks = [Depends(authenticate), Depends(within_rate), Depends(known_query_only)]
    v1 = APIRouter(prefix="/v1", dependencies=v1_checks, responses=V1_ERRORS)
    v1.include_router(batches.router)
    v1.include_router(replications.router)
    v1.include_router(plans.router)
    v1.include_router(accounts.router)
    v1.include_router(audit.router)
    v1.include_router(policies.router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(AuditCalls, auditor=app.state.auditor)
    app.add_middleware(RequestIds)  # outermost: every answer carries the ID, and the audit records it
    install_error_handlers(app)
    add_body_schemas(app, [BatchRequest, ItemSpec, PolicyRequest])
    return app


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.secret_values(), log_format=settings.log_format)
    # uvicorn gave its loggers handlers and levels of their own: hand them to ours (format, level, secret masking).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
