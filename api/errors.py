"""The API's errors and the handlers that turn every failure into a JSON answer with a ``message``.

Client mistakes are 4xx naming the field and the rule; a Redis outage is a 503; anything else is a logged 500,
the last resort that the tests show no input reaches.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One broken rule: which item (None for the request as a whole), which field, and the rule it breaks."""

    index: int | None
    field: str
    rule: str


class ApiError(Exception):
    status_code = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers

    def body(self) -> dict[str, object]:
        return {"message": self.message}


class InvalidRequest(ApiError):
    status_code = 422

    def __init__(self, problems: list[Problem], message: str) -> None:
        super().__init__(message)
        self.problems = problems

    def body(self) -> dict[str, object]:
        return {"message": self.message, "detail": [asdict(p) for p in self.problems]}


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self) -> None:
        # Deliberately generic: never echo what the client sent in its Authorization header.
        super().__init__("missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


class PayloadTooLarge(ApiError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body: must be at most {limit} bytes")


def problems_from_pydantic(
    errors: list[dict], index: int | None = None, *, skip: int = 0, prefix: str = "", root: str = "item"
) -> list[Problem]:
    """Our problem shape from pydantic's errors.

    ``skip`` drops leading location parts (``query``, ``path``), ``prefix`` names the enclosing field and ``root``
    is the field reported when the value as a whole is wrong (not an object, say).
    """
    problems = []
    for err in errors:
        path = ".".join(str(p) for p in err["loc"][skip:])
        field = f"{prefix}.{path}" if prefix and path else (prefix or path or root)
        problems.append(Problem(index, field, _rule(err)))
    return problems


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
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Path and query parameters; request bodies are parsed by api.validation, which reports per item.
        problems = problems_from_pydantic(list(exc.errors()), skip=1)
        summary = "; ".join(f"{p.field}: {p.rule}" for p in problems)
        return JSONResponse(InvalidRequest(problems, summary).body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(redis.RedisError)
    async def _redis(request: Request, exc: redis.RedisError) -> JSONResponse:
        log.warning("Redis error on %s %s: %s", request.method, request.url.path, exc)
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            message = f"Redis is unreachable: {exc}"
        else:
            # redis-py prefixes a pipeline's error with the command and its arguments; keep Redis's own words.
            message = f"Redis could not serve the request: {str(exc).split('caused error: ', 1)[-1]}"
        return JSONResponse({"message": message}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"message": "internal error; it has been logged"}, status_code=500)
