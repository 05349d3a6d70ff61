"""Dependencies the routes declare: the settings, the service, the calling principal and a JSON body."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import limits
from api.errors import FieldError, InvalidRequest, Unauthorized
from api.policies import PolicyService
from api.principals import Principal, PrincipalRegistry
from api.service import ReplicationService
from config.settings import Settings


def app_settings(request: Request) -> Settings:
    """The settings this app was built with (``config.settings.get_settings`` is the process's own)."""
    return request.app.state.settings


def get_service(request: Request) -> ReplicationService:
    return request.app.state.service


def get_policies(request: Request) -> PolicyService:
    return request.app.state.policies


SettingsDep = Annotated[Settings, Depends(app_settings)]
ServiceDep = Annotated[ReplicationService, Depends(get_service)]
PoliciesDep = Annotated[PolicyService, Depends(get_policies)]

_bearer = HTTPBearer(auto_error=False, description="A principal's token (docs/teams.md), or one of IMSREP_API_TOKENS")


def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not declare: ``?stat=running`` would otherwise list every batch."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _query_names(route.dependant)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        rule = f"is not a query parameter here (known: {allowed})"
        errors = [FieldError(None, name or "(empty name)", rule) for name in unknown]
        raise InvalidRequest(errors, "; ".join(f"{e.field}: {e.rule}" for e in errors))


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The principal whose bearer token the request carries (401 without one); kept on the request for the audit
    trail and the access log."""
    registry: PrincipalRegistry = request.app.state.principals
    principal = None if credentials is None else registry.authenticate(credentials.credentials)
    if principal is None:
        raise Unauthorized()
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def within_rate(request: Request, who: PrincipalDep) -> None:
    """Every ``/v1`` request takes one of its principal's request tokens (429 when there is none: ``api.limits``)."""
    limits.take_request(request.app.state.limits, who, request.url.path)


# Deeper than any body the API takes (a batch's items' tags are four levels down). Pythons before 3.14 stop parsing
# near 1,000 levels (RecursionError); 3.14 and later parse far deeper (a C-stack check), so the rule is ours.
MAX_JSON_DEPTH = 32


async def json_body(request: Request) -> Any:
    """The request body as JSON; its size was capped by BodySizeLimit before a byte was parsed."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest([FieldError(None, "body", "is required")], "body: is required; send a JSON object")
    too_deep = f"must be valid JSON (nested too deeply: at most {MAX_JSON_DEPTH} levels)"
    try:
        payload = json.loads(raw)
    except RecursionError:
        rule = too_deep
    except ValueError as exc:  # includes bytes that are not UTF-8
        rule = f"must be valid JSON ({exc})"
    else:
        rule = _unstorable(payload, too_deep)
        if rule is None:
            return payload
    raise InvalidRequest([FieldError(None, "body", rule)], f"body: {rule}")


def _unstorable(payload: Any, too_deep: str) -> str | None:
    """The rule a parsed body breaks, if any: nested deeper than ``MAX_JSON_DEPTH``, or a string with half a
    surrogate pair (JSON may escape one; it cannot be stored, or even echoed, as UTF-8).

    Iterative, as the payload may be nested as deeply as the JSON parser allows.
    """
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    return "must be valid Unicode (a \\uD800-\\uDFFF escape without its pair)"
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return too_deep
            children = [*value, *value.values()] if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return None


JsonBody = Annotated[Any, Depends(json_body)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        description=(
            "Makes the request safe to send again: the same key with the same body within idempotency_seconds "
            "(default 24 h) answers the first request's 202 again (with `Idempotent-Replayed: true`) and stores "
            "nothing; the same key with another body is a 409. 1-255 visible ASCII characters."
        ),
    ),
]
REPLAYED = "Idempotent-Replayed"
