"""What every API request goes through, as the real API gateway would put it: request ID, latency,
authentication, the project's rate limit, injected faults, the handler, statistics, and a possible hang."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator import errors
from simulator.auth import Principal
from simulator.context import Simulator
from simulator.errors import ApiError
from simulator.faults import FaultPlan
from simulator.state import Project

log = logging.getLogger(__name__)


@dataclass
class Call:
    sim: Simulator
    request: Request
    body: bytes
    project: Project | None  # None only for unauthenticated APIs (IAM)
    now: float


Handler = Callable[[Call], Response]


class RequestIdMiddleware:
    """Gives each request an ID (in ``request.state.request_id``) and every response an ``X-Request-Id``, and
    finds the region it addresses (``request.state.region``)."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self.sim.streams.request_id()
        host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), None)
        server = scope.get("server") or (None, None)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["region"] = self.sim.region_of(host, server[1])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def region_endpoints(sim: Simulator, request: Request) -> dict[str, str]:
    """Each region's endpoint for the client that sent ``request``: its own region at the address it used, the
    others alike (by host name, or at the same host on their ports)."""
    host = request.headers.get("host") or request.url.netloc
    endpoints = sim.endpoints(host, request.url.scheme)
    endpoints[request.state.region] = f"{request.url.scheme}://{host}"
    return endpoints


def lower_headers(request: Request) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for name, value in request.headers.raw:
        merged.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return {name: ",".join(values) for name, values in merged.items()}


def authenticate(sim: Simulator, request: Request, body: bytes, now: float) -> Principal:
    """The caller, by AK/SK signature or token (401 otherwise); its project, if any, is not checked here."""
    return sim.auth.authenticate(
        method=request.method,
        raw_path=request.scope.get("raw_path", request.url.path.encode()).decode("latin-1"),
        raw_query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=lower_headers(request),
        body=body,
        now=now,
    )


def resolve_project(sim: Simulator, request: Request, body: bytes, now: float) -> Project:
    principal = authenticate(sim, request, body, now)
    path_project = request.path_params.get("project_id")
    region = request.state.region
    # Under AK/SK without X-Project-Id, the path's project (or the region's default project) is meant.
    project_id = principal.project_id or path_project or sim.state.default_project(region).id
    project = sim.state.projects.get(project_id)
    # A project of another region is as unavailable at this region's endpoint as one that does not exist.
    if project is None or project.region != region:
        raise errors.project_unavailable()
    if path_project is not None and path_project != project.id:
        raise errors.not_authorized()
    return project


async def _outage_answer(sim: Simulator, request: Request, plan: FaultPlan, name: str) -> Response | None:
    """During an outage of the request's region: the failure its mode gives, the request not processed."""
    region = request.state.region
    outage = sim.outages.active(region)
    if outage is None:
        return None
    sim.faults.count(f"outage_{outage.mode}")
    error = plan.server_error
    if outage.mode == "hang":
        await sim.outages.wait_over(region)
        error = errors.GatewayError(504, "APIGW.0201", "Backend timeout")
    elif outage.mode == "refuse":
        # Refusals happen at the connection (outage.refusing_protocol); one that got this far is a 502.
        error = errors.GatewayError(502, "APIGW.0201", "Backend unavailable")
    response = error.response(request.state.request_id)
    sim.stats.record(name, response.status_code, None, region)
    return response


def api_route(
    sim: Simulator, path: str, handler: Handler, *, name: str, method: str, authenticated: bool = True
) -> Route:
    async def endpoint(request: Request) -> Response:
        request_id = request.state.request_id
        plan = sim.faults.plan()
        down = await _outage_answer(sim, request, plan, name)
        if down is not None:
            return down
        if sim.knobs.latency > 0:
            await asyncio.sleep(sim.knobs.latency)
        body = await request.body()
        project = None
        # From here to the handler's return there is no await: state changes are atomic.
        try:
            now = sim.clock()
            if authenticated:
                project = resolve_project(sim, request, body, now)
                sim.admit(project.id)
            if plan.throttle:
                sim.faults.count("throttle")
                raise errors.throttled(sim.knobs.request_rate or 200)
            if plan.error is not None and sim.knobs.errs_on(name):
                sim.faults.count("error")
                raise plan.error
            sim.state.tick(now)
            response = handler(Call(sim, request, body, project, now))
        except ApiError as exc:
            response = exc.response(request_id)
        except Exception:  # a simulator bug must still answer in a gateway shape
            log.exception("handler %s failed", name)
            response = errors.GatewayError(500, "APIGW.0201", "Backend internal error").response(request_id)
        sim.stats.record(name, response.status_code, project.id if project else None, request.state.region)
        if plan.hang:
            # The request has taken effect; only the answer is late, as when a gateway times out.
            sim.faults.count("hang")
            await asyncio.sleep(sim.knobs.hang_seconds)
        return response

    return Route(path, endpoint, methods=[method], name=name)
