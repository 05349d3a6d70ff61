"""IAM: project-scoped tokens for password credentials (https://support.huaweicloud.com/intl/en-us/api-iam/iam_30_0001.html)
and the project list (https://support.huaweicloud.com/intl/en-us/api-iam/iam_06_0001.html), which the official SDK
reads to find a region's project ID under AK/SK."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.catalog.records import NAMESPACE
from simulator.context import Simulator
from simulator.errors import IamError
from simulator.gateway import Call, api_route, authenticate, region_endpoints
from simulator.state import Project
from simulator.timefmt import token_time


def _bad_request(message: str) -> IamError:
    return IamError(400, "Bad Request", message)


def _dig(body: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _scoped_project(sim: Simulator, scope: Any) -> Project:
    wanted = _dig(scope, "project")
    if not isinstance(wanted, dict) or not (wanted.get("id") or wanted.get("name")):
        raise _bad_request("The simulator issues project-scoped tokens only: give scope.project.name or .id.")
    project = sim.state.projects.get(wanted.get("id") or "") or sim.state.project_named(wanted.get("name") or "")
    if project is None:
        raise _bad_request("The project does not exist.")
    return project


def _check_password(sim: Simulator, body: Any) -> None:
    identity = _dig(body, "auth", "identity")
    if not isinstance(identity, dict) or "password" not in (identity.get("methods") or []):
        raise _bad_request("The request body is invalid: auth.identity.methods must include password.")
    user = _dig(identity, "password", "user")
    domain = _dig(user, "domain") or {}
    config = sim.config
    domain_ok = domain.get("name") == config.iam_domain or domain.get("id") == sim.domain_id
    if not (_dig(user, "name") == config.iam_user and _dig(user, "password") == config.iam_password and domain_ok):
        raise IamError(401, "Unauthorized", "The username or password is wrong.")


def _catalog(sim: Simulator, call: Call) -> list[dict[str, Any]]:
    """Every service with one endpoint per region served, as IAM's catalogue lists them: this is how a client
    that starts from IAM finds the other regions' endpoints."""
    endpoints = region_endpoints(sim, call.request)
    return [
        {
            "type": kind,
            "name": name,
            "id": f"{name}-endpoint",
            "endpoints": [
                {"url": url, "region": region, "region_id": region, "interface": "public", "id": f"{name}-{region}"}
                for region, url in endpoints.items()
            ],
        }
        for kind, name in (("image", "ims"), ("kms", "kms"), ("identity", "iam"))
    ]


def issue_token_handler(call: Call) -> Response:
    try:
        body = json.loads(call.body)
    except ValueError as exc:
        raise _bad_request("The request body is not valid JSON.") from exc
    sim = call.sim
    _check_password(sim, body)
    project = _scoped_project(sim, _dig(body, "auth", "scope"))
    value, token = sim.tokens.issue(project.id, call.now)
    domain = {"id": sim.domain_id, "name": sim.config.iam_domain}
    user_id = uuid.uuid5(NAMESPACE, f"user:{sim.config.iam_domain}:{sim.config.iam_user}").hex
    payload: dict[str, Any] = {
        "expires_at": token_time(token.expires_at),
        "issued_at": token_time(token.issued_at),
        "methods": ["password"],
        "project": {"id": project.id, "name": project.name, "domain": domain},
        "user": {"id": user_id, "name": sim.config.iam_user, "domain": domain, "password_expires_at": ""},
        "roles": [{"id": "0", "name": "te_admin"}],
    }
    if call.request.query_params.get("nocatalog", "").lower() != "true":
        payload["catalog"] = _catalog(sim, call)
    return JSONResponse({"token": payload}, status_code=201, headers={"X-Subject-Token": value})


def list_projects_handler(call: Call) -> Response:
    """``GET /v3/projects``: every project of every region (IAM is global), filtered by ``name``, ``domain_id``
    and ``enabled``. An AK/SK signature (no ``X-Project-Id`` needed) or any token of the account will do."""
    sim = call.sim
    authenticate(sim, call.request, call.body, call.now)
    query = call.request.query_params
    base = f"{call.request.url.scheme}://{call.request.headers.get('host') or call.request.url.netloc}"
    projects = [
        {
            "id": project.id,
            "name": project.name,
            "domain_id": sim.domain_id,
            "parent_id": sim.domain_id,
            "description": "",
            "enabled": True,
            "is_domain": False,
            "links": {"self": f"{base}/v3/projects/{project.id}"},
        }
        for project in sim.state.projects.values()
        if query.get("name", project.name) == project.name
    ]
    if query.get("domain_id", sim.domain_id) != sim.domain_id or query.get("enabled", "true").lower() == "false":
        projects = []
    return JSONResponse(
        {"projects": projects, "links": {"self": str(call.request.url), "previous": None, "next": None}}
    )


def routes(sim: Simulator) -> list[Route]:
    return [
        api_route(sim, "/v3/auth/tokens", issue_token_handler, name="tokens", method="POST", authenticated=False),
        api_route(sim, "/v3/projects", list_projects_handler, name="list_projects", method="GET", authenticated=False),
    ]
