"""Turning IMS/KMS/IAM answers into data or into the worker's typed errors."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx

from worker.domain.reasons import ReasonCode
from worker.errors import (
    IMS_REASONS,
    THROTTLE_CODES,
    AuthenticationError,
    CloudUnavailableError,
    ImsRefusedError,
    ReplicatorError,
    ThrottledError,
    reason_for_code,
)

# The SDK's order of (code, message) keys in an error body (docs/ims-api.md §6).
_ERROR_KEYS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))
# Endpoints where a bare 404 (no IMG code) can only mean the image is missing.
_IMAGE_ENDPOINTS = frozenset({"copy", "show_image"})


def parse_error_body(body: bytes | str) -> tuple[str | None, str]:
    """The ``(code, message)`` of an error body; ``(None, raw text)`` when no known shape is found."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return None, text
    found = _find_code(data)
    return found if found else (None, text)


def _find_code(data: Any) -> tuple[str, str] | None:
    if not isinstance(data, dict):
        return None
    for code_key, message_key in _ERROR_KEYS:
        if data.get(code_key):
            return str(data[code_key]), str(data.get(message_key) or "")
    for value in data.values():  # nested, e.g. {"error": {"code": ..., "message": ...}}
        found = _find_code(value)
        if found:
            return found
    return None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (longest first, so no fragment survives)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def request_id(response: httpx.Response) -> str | None:
    return response.headers.get("X-Request-Id")


def _retry_after(response: httpx.Response) -> float | None:
    # Not documented for APIG, but honour the standard header (seconds form) when a gateway sends it.
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def error_from_response(endpoint: str, response: httpx.Response, secrets: Iterable[str]) -> ReplicatorError:
    """The typed error for a non-2xx answer. The service's message is redacted of ``secrets``."""
    status = response.status_code
    code, message = parse_error_body(response.content)
    cloud: dict[str, Any] = {
        "endpoint": endpoint,
        "status_code": status,
        "code": code,
        "request_id": request_id(response),
    }
    message = redact(message, secrets) or response.reason_phrase
    if status == 429 or code in THROTTLE_CODES:
        return ThrottledError(message, retry_after=_retry_after(response), **cloud)
    if status >= 500 or status < 400:
        return CloudUnavailableError(message, **cloud)
    if status == 401:
        return AuthenticationError(message, **cloud)
    if status == 403 and code not in IMS_REASONS:
        # Roles, policies, project unavailable: the account is at fault. A 403 carrying a known item-level
        # code (e.g. IMG.0106 "owner is another tenant") is about this image only.
        return AuthenticationError(message, **cloud)
    if status == 404 and code is None:
        reason = ReasonCode.IMAGE_NOT_FOUND if endpoint in _IMAGE_ENDPOINTS else ReasonCode.IMS_REFUSED
        return ImsRefusedError(message, reason=reason, **cloud)
    return ImsRefusedError(message, reason=reason_for_code(code), **cloud)


def outcome(response: httpx.Response, error: ReplicatorError | None) -> str:
    """The metrics label of an answer: the IMS code of an IMS refusal, ``malformed`` for a 2xx we could not
    read, otherwise the HTTP status."""
    if error is not None and error.code and error.code.startswith("IMG."):
        return error.code
    if error is not None and response.is_success:
        return "malformed"
    return str(response.status_code)


def json_body(endpoint: str, response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else is a malformed answer, worth trying again."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CloudUnavailableError(
            "malformed response: expected a JSON object",
            endpoint=endpoint,
            status_code=response.status_code,
            request_id=request_id(response),
        )
    return data
