"""IAM password authentication: a project-scoped token, cached in this process, sent as ``X-Auth-Token``.

The token lives only in process memory (never Redis, never logs). It is renewed ``refresh_margin`` seconds before
``expires_at``, and once more when the gateway says a cached token is no longer good (docs/ims-api.md §8).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from datetime import datetime, timedelta, timezone

import httpx
from pydantic import SecretStr

from worker.errors import CloudUnavailableError, ReplicatorError
from worker.ims.hooks import ClientHooks
from worker.ims.models import parse_time
from worker.ims.responses import error_from_response, outcome, parse_error_body, request_id

TOKEN_PATH = "/v3/auth/tokens"
# 401 codes that mean "this token is no longer accepted": worth one renewal (APIGW.0307 "must be updated").
RENEW_CODES = frozenset({"APIGW.0307", "APIGW.0301"})
# When the answer has no usable expires_at, trust the token this long (it is valid for 24 h).
_FALLBACK_LIFETIME = timedelta(hours=1)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def is_token_request(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith(TOKEN_PATH)


class TokenAuth(httpx.Auth):
    requires_response_body = True  # to read the error code of a 401

    def __init__(
        self,
        iam_endpoint: str,
        user: str,
        password: SecretStr,
        domain: str,
        project_id: str | None,
        *,
        project_name: str | None = None,
        hooks: ClientHooks | None = None,
        refresh_margin: float = 900.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._url = iam_endpoint.rstrip("/") + TOKEN_PATH
        self._user = user
        self._password = password
        self._domain = domain
        # The scope: a project ID, or a project name (a destination known by name only; its ID is then read from the
        # token, ``project_id``).
        self.project_id = project_id
        self._project_name = project_name
        self._hooks = hooks or ClientHooks()
        self._margin = timedelta(seconds=refresh_margin)
        self._clock = clock
        self._token: str | None = None
        self._renew_at = datetime.min.replace(tzinfo=timezone.utc)

    def secret_values(self) -> list[str]:
        return [v for v in (self._password.get_secret_value(), self._token) if v]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        fresh = self._token is None or self._clock() >= self._renew_at
        if fresh:
            yield from self._renew(request)
        request.headers["X-Auth-Token"] = self._token or ""
        response = yield request
        if fresh or response.status_code != 401 or parse_error_body(response.content)[0] not in RENEW_CODES:
            return
        # The cached token was revoked or expired early (password or role change): renew once and replay.
        self._token = None
        yield from self._renew(request)
        request.headers["X-Auth-Token"] = self._token or ""
        yield request

    def _renew(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._hooks.before_request("token")
        response = yield self._token_request(request)
        self._store(response)

    def issue(self, http: httpx.Client) -> None:
        """Obtain a token now unless a good one is cached, so a credential problem shows before the calls that
        need it (a cross-region copy's destination, say)."""
        if self._token is not None and self._clock() < self._renew_at:
            return
        self._hooks.before_request("token")
        try:
            # Sent as it is: the token request carries the password, not a token (``auth=None``).
            response = http.send(self._token_request(http.build_request("POST", self._url)), auth=None)
        except httpx.TransportError as exc:
            label = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
            self._hooks.after_response("token", label)
            raise CloudUnavailableError(f"token request failed ({type(exc).__name__})", endpoint="token") from exc
        self._store(response)

    def _store(self, response: httpx.Response) -> None:
        try:
            token, expires_at = self._read_token(response)
        except ReplicatorError as error:
            self._hooks.after_response("token", outcome(response, error))
            raise
        self._hooks.after_response("token", outcome(response, None))
        self._token = token
        self._renew_at = (expires_at or self._clock() + _FALLBACK_LIFETIME) - self._margin

    def _read_token(self, response: httpx.Response) -> tuple[str, datetime | None]:
        if not response.is_success:
            raise error_from_response("token", response, self.secret_values())
        token = response.headers.get("X-Subject-Token")
        if not token:
            raise CloudUnavailableError(
                "malformed response: no X-Subject-Token header",
                endpoint="token",
                status_code=response.status_code,
                request_id=request_id(response),
            )
        try:  # the token is what matters; a body we cannot read only costs an earlier renewal
            body = response.json()["token"]
            expires_at = parse_time(body["expires_at"])
            self.project_id = self.project_id or body["project"]["id"]
        except (ValueError, KeyError, TypeError):
            expires_at = None
        return token, expires_at

    def _scope(self) -> dict[str, object]:
        if self.project_id:
            return {"id": self.project_id}
        return {"name": self._project_name, "domain": {"name": self._domain}}

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._user,
                            "password": self._password.get_secret_value(),
                            "domain": {"name": self._domain},
                        }
                    },
                },
                "scope": {"project": self._scope()},
            }
        }
        return httpx.Request(
            "POST",
            self._url,
            params={"nocatalog": "true"},  # the service catalogue is large and unused
            headers={"Content-Type": "application/json;charset=utf8"},
            content=json.dumps(body).encode("utf-8"),
            extensions={k: v for k, v in request.extensions.items() if k == "timeout"},  # same timeouts
        )
