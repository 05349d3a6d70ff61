"""The ASGI application: IMS, KMS, IAM, the metadata service's credentials and ``/_sim/`` routes; anything else
answers like the gateway."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from simulator.config import SimConfig
from simulator.context import Simulator
from simulator.errors import no_such_api
from simulator.gateway import RequestIdMiddleware
from simulator.routes import iam, ims, introspection, kms, metadata, sharing


def create_app(config: SimConfig, sim: Simulator | None = None) -> Starlette:
    sim = sim or Simulator(config)

    async def unknown_api(request: Request, _exc: Exception) -> Response:
        # Unknown paths and unsupported methods alike: 404 APIGW.0101, never a framework default body.
        sim.stats.record("unknown", 404, None)
        return no_such_api().response(request.state.request_id)

    app = Starlette(
        routes=[
            *ims.routes(sim),
            *sharing.routes(sim),
            *kms.routes(sim),
            *iam.routes(sim),
            *metadata.routes(sim),
            *introspection.routes(sim),
        ],
        middleware=[Middleware(RequestIdMiddleware, sim=sim)],
        exception_handlers={HTTPException: unknown_api},
    )
    # No 307 to the slash-less path: the real gateway knows no such courtesy, so "/v2/cloudimages/" is unknown.
    app.router.redirect_slashes = False
    app.state.sim = sim
    return app
