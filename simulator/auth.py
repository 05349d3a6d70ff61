"""Who is calling: an AK/SK signature (with the gateway's lock-out; a temporary AK/SK with its security token) or an
IAM token this simulator issued."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from simulator import errors
from simulator.signing import SignatureError, parse_authorization, verify
from simulator.temporary import TemporaryKeys
from simulator.tokens import TokenStore

log = logging.getLogger(__name__)

MAX_FAILURES = 5  # consecutive failed signatures before the AK is locked (https://support.huaweicloud.com/intl/en-us/devg-apisign/api-sign-errorcode.html)


@dataclass(frozen=True)
class Principal:
    method: str  # "aksk" or "token"
    project_id: str | None  # the token's scope, or X-Project-Id under AK/SK (None when absent)


class Authenticator:
    def __init__(
        self, credentials: Mapping[str, str], tokens: TokenStore, temporary: TemporaryKeys, lockout_seconds: float
    ) -> None:
        self._credentials = dict(credentials)
        self._tokens = tokens
        self._temporary = temporary
        self.lockout_seconds = lockout_seconds
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}

    def authenticate(
        self, *, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes, now: float
    ) -> Principal:
        """``headers`` maps lower-case names to values. Raise a 401 ``GatewayError`` when not authenticated."""
        if "x-auth-token" in headers:
            return self._token(headers["x-auth-token"], now)
        authorization = parse_authorization(headers.get("authorization", ""))
        if authorization is None:
            raise errors.auth_failed()
        access_key = authorization.access_key
        temporary = self._temporary.get(access_key)
        secret_key = temporary.secret_key if temporary is not None else self._credentials.get(access_key)
        if secret_key is None:
            raise errors.auth_failed(errors.AK_UNKNOWN.format(ak=access_key))
        if self._locked_until.get(access_key, 0.0) > now:
            raise errors.auth_failed(errors.AK_LOCKED)
        if temporary is not None and temporary.expired(now):
            raise errors.auth_failed(errors.AK_EXPIRED)
        try:
            verify(
                method=method,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=headers,
                body=body,
                authorization=authorization,
                secret_key=secret_key,
                now=now,
            )
            # A temporary AK is good only with the token it was issued with (a permanent AK's token is ignored).
            if temporary is not None and headers.get("x-security-token", "").strip() != temporary.security_token:
                raise SignatureError("X-Security-Token missing or not the one issued with this AK")
        except SignatureError as exc:
            self._fail(access_key, now, str(exc))
            raise errors.auth_failed() from exc
        self._failures.pop(access_key, None)
        return Principal("aksk", headers.get("x-project-id") or None)

    def _token(self, value: str, now: float) -> Principal:
        token = self._tokens.get(value.strip())
        if token is None:
            raise errors.auth_failed(errors.TOKEN_INVALID)
        if not token.valid(now):
            raise errors.token_expired()
        return Principal("token", token.project_id)

    def _fail(self, access_key: str, now: float, reason: str) -> None:
        count = self._failures.get(access_key, 0) + 1
        log.info("AK/SK signature refused for %s (%d in a row): %s", access_key, count, reason)
        if count >= MAX_FAILURES:
            self._locked_until[access_key] = now + self.lockout_seconds
            count = 0
        self._failures[access_key] = count

    def locked(self, now: float) -> list[str]:
        return sorted(ak for ak, until in self._locked_until.items() if until > now)
