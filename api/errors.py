"""The API's errors, answered as RFC 9457 problem details (``application/problem+json``).

Every error answer has ``type`` (``about:blank``: the status code says it all), ``title`` (the status phrase),
``status``, ``detail`` (one readable sentence) and ``instance`` (the request path); a refused request adds ``errors``,
one ``{index, field, rule}`` per broken rule. Client mistakes are 4xx naming the field and the rule; a Redis outage is
a 503; anything else is a logged 500, the last resort that the tests show no input reaches.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from http import HTTPStatus

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.data import NotReplicated, unavailable
from worker.pressure import REFUSALS

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER = "5"  # seconds a client waits before sending a request Redis could not serve again


@dataclass(frozen=True)
class FieldError:
    """One broken rule: which item (None for the request as a whole), which field, and the rule it breaks."""

    index: int | None
    field: str
    rule: str


def problem(
    status: int,
    detail: str,
    instance: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The problem-details answer for ``status``."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = [asdict(e) for e in errors]
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


class ProblemError(Exception):
    """An error the API answers as a problem document: its status, ``detail`` and any extra headers."""

    status_code = 400

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers

    def response(self, instance: str) -> JSONResponse:
        return problem(self.status_code, self.detail, instance, headers=self.headers)


class InvalidRequest(ProblemError):
    status_code = 422

    def __init__(self, errors: list[FieldError], detail: str) -> None:
        super().__init__(detail)
        self.errors = errors

    def response(self, instance: str) -> JSONResponse:
        return problem(self.status_code, self.detail, instance, errors=self.errors)


class NotFound(ProblemError):
    status_code = 404


class Conflict(ProblemError):
    status_code = 409


class Forbidden(ProblemError):
    """The principal's role or accounts do not allow this (what it cannot see at all is a 404 instead)."""

    status_code = 403


class Unavailable(ProblemError):
    """Nothing was accepted because Redis could not keep it; the client may send the same request again."""

    status_code = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": RETRY_AFTER})


class Unauthorized(ProblemError):
    status_code = 401

    def __init__(self) -> None:
        # Deliberately generic: never echo what the client sent in its Authorization header.
        super().__init__("missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


class TooManyRequests(ProblemError):
    """The principal is over one of its limits (docs/teams.md, "Limits"); nothing was done or stored."""

    status_code = 429

    def __init__(self, detail: str, retry_after: float) -> None:
        # Retry-After takes whole seconds: rounded up, so a client that waits that long finds room.
        super().__init__(detail, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class PayloadTooLarge(ProblemError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body: must be at most {limit} bytes")


def field_errors_from_pydantic(
    errors: list[dict], index: int | None = None, *, skip: int = 0, prefix: str = "", root: str = "item"
) -> list[FieldError]:
    """Our per-field errors from pydantic's.

    ``skip`` drops leading location parts (``query``, ``path``), ``prefix`` names the enclosing field and ``root``
    is the field reported when the value as a whole is wrong (not an object, say).
    """
    found = []
    for err in errors:
        path = ".".join(str(p) for p in err["loc"][skip:])
        field = f"{prefix}.{path}" if prefix and path else (prefix or path or root)
        found.append(FieldError(index, field, _rule(err)))
    return found


def _rule(err: dict) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object"
    return err["msg"]  # pydantic's own wording, e.g. "Input should be a valid string"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return exc.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Path and query parameters; request bodies are parsed by api.validation, which reports per item.
        errors = field_errors_from_pydantic(list(exc.errors()), skip=1)
        summary = "; ".join(f"{e.field}: {e.rule}" for e in errors)
        return InvalidRequest(errors, summary).response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), request.url.path, headers=exc.headers)

    @app.exception_handler(redis.RedisError)
    async def _redis(request: Request, exc: redis.RedisError) -> JSONResponse:
        if unavailable(exc):  # one log line per episode, not per request (worker.pressure)
            REFUSALS.refused(f"{request.method} {request.url.path} answered 503", exc)
        else:
            log.warning("Redis error on %s %s: %s", request.method, request.url.path, exc)
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            # Its words name the host and port (and an AUTH refusal, the set-up): the log has them, not the caller.
            detail = "Redis is unavailable"
        elif isinstance(exc, NotReplicated):
            detail = f"Redis could not keep the request safe from a failover ({exc}); nothing was accepted"
        else:
            # redis-py prefixes a pipeline's error with the command and its arguments; keep Redis's own words.
            detail = f"Redis could not serve the request: {str(exc).split('caused error: ', 1)[-1]}"
        return problem(503, detail, request.url.path, headers={"Retry-After": RETRY_AFTER})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal error; it has been logged", request.url.path)
