"""The AK/SK a request is signed with: fixed ones from the settings, the settings' files read again when they change,
or temporary ones from the ECS metadata service, renewed before they expire (docs/ims-api.md §8).

The metadata service (``GET /openstack/latest/securitykey``) hands out the temporary AK/SK of the agency attached
to the server, with its security token and expiry, in the shape the official SDK's ``MetadataAccessor`` reads. They
live in this process's memory only, and each value is added to the log redaction as soon as it is learnt.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import httpx
from pydantic import SecretStr

from config.logging import mask_secrets
from worker.errors import CredentialsUnavailableError
from worker.ims.models import parse_time

log = logging.getLogger(__name__)

SECURITY_KEY_PATH = "/openstack/latest/securitykey"
ENDPOINT = "securitykey"  # the name errors give the metadata call
# Renew when less than this is left, or less than half the credentials' life for short-lived ones: a request signed
# just before the renewal still has that long to reach the gateway. (The SDK renews 40 minutes ahead, which would
# renew a 15-minute credential on every call.)
RENEW_MARGIN = timedelta(minutes=10)
# After a failed renewal, the credentials held (while valid) are used this long before the next attempt, so that a
# metadata service that is away is not asked by every request.
RETRY_AFTER = timedelta(seconds=5)
_TIMEOUT = 3.0  # the SDK's (3, 3): the metadata service is on the host's own link


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Credentials:
    """An AK/SK, with its security token and times when it is temporary."""

    access_key: SecretStr
    secret_key: SecretStr
    security_token: SecretStr | None = None
    expires_at: datetime | None = None  # None: permanent
    renew_at: datetime | None = field(default=None, compare=False)

    def secret_values(self) -> list[str]:
        return [s.get_secret_value() for s in (self.access_key, self.secret_key, self.security_token) if s]


class CredentialSource(Protocol):
    """What ``AkSkAuth`` signs with."""

    def current(self) -> Credentials:
        """The credentials to sign the next request with; may raise ``CredentialsUnavailableError``."""

    def renewed(self, refused: Credentials) -> Credentials | None:
        """Credentials in place of ``refused``, which the gateway no longer accepts; ``None``: there are none (the
        refusal stands); may raise ``CredentialsUnavailableError`` when newer ones are expected but not there yet."""

    def secret_values(self) -> list[str]:
        """The secrets an error message must not show: those held (never fetched for the asking)."""


class StaticCredentials:
    """The settings' AK/SK (and security token): signed with until the process ends, never renewed."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def current(self) -> Credentials:
        return self._credentials

    def renewed(self, refused: Credentials) -> Credentials | None:
        return None

    def secret_values(self) -> list[str]:
        return self._credentials.secret_values()


# What tells a changed file: the file behind the name (Kubernetes swaps a symlink), its time and its size.
_Stamp = tuple[tuple[int, int, int] | None, ...]


class FileCredentials:
    """The settings' AK/SK and security token, read again from their files (``…_FILE`` settings) when these change:
    how Docker and Kubernetes hand a process new temporary credentials without a restart. A ``stat`` of each file
    before each request tells a change; the new values are read under a lock, once for every thread.

    The files change one after the other, so a read may pair a new AK with an old SK: the gateway refuses it, and
    ``renewed`` reads the files again. When a security token is refused (it has expired) and the files still hold
    it, the rotation is late: the step fails retryably and reads them again at its next try, rather than taking the
    account for a broken one.
    """

    def __init__(
        self,
        credentials: Credentials,
        files: Mapping[str, Path],
        *,
        learn: Callable[[Iterable[str]], None] = mask_secrets,
    ) -> None:
        self._files = dict(files)  # field of Credentials -> its file
        self._held = credentials
        self._previous: Credentials | None = None
        self._learn = learn
        self._lock = threading.Lock()
        self._stamp = self._stamps()

    def current(self) -> Credentials:
        stamp = self._stamps()
        if stamp == self._stamp:
            return self._held
        with self._lock:
            return self._read(stamp)

    def renewed(self, refused: Credentials) -> Credentials | None:
        with self._lock:
            fresh = self._read(self._stamps(), again=True)
        if fresh != refused:
            return fresh
        if refused.security_token is None:
            return None  # a permanent AK/SK refused: the account's credentials are wrong
        names = ", ".join(str(path) for path in self._files.values())
        raise CredentialsUnavailableError(f"the security token was refused (expired?) and {names} hold no newer one")

    def secret_values(self) -> list[str]:
        # The ones before too: an answer to a request signed with them may still be on its way.
        return [value for held in (self._held, self._previous) if held is not None for value in held.secret_values()]

    def _stamps(self) -> _Stamp:
        stamps = []
        for path in self._files.values():
            try:
                stat = os.stat(path)
            except OSError:
                stamps.append(None)
                continue
            stamps.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def _read(self, stamp: _Stamp, *, again: bool = False) -> Credentials:
        """Under the lock: the files' credentials if they changed since ``self._stamp`` was taken (or ``again``),
        else those held. A file that cannot be read, or is empty (caught mid-write), leaves the ones held in use."""
        if stamp == self._stamp and not again:
            return self._held
        values = {}
        for name, path in self._files.items():
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("credentials file %s not read (%s); the current credentials stay in use", path, exc)
                return self._held
            if not values[name].strip():
                return self._held  # being written; its next change is read
        fresh = replace(self._held, **{name: SecretStr(value) for name, value in values.items()})
        self._stamp = stamp
        if fresh != self._held:
            self._learn(fresh.secret_values())
            self._held, self._previous = fresh, self._held
            log.info("credentials read again from %s", ", ".join(str(path) for path in self._files.values()))
        return self._held


def renewal_time(obtained_at: datetime, expires_at: datetime, margin: timedelta = RENEW_MARGIN) -> datetime:
    return expires_at - min(margin, (expires_at - obtained_at) / 2)


class MetadataCredentials:
    """Temporary credentials from ``fetch``, renewed once ``renewal_time`` has come.

    Every step thread of a process (and every account reading the same metadata service) shares one instance, so
    they share one renewal: one thread fetches under the lock while the others go on signing with the credentials
    held, as long as those are valid, and wait for the new ones once they are not. A failed renewal keeps the valid
    credentials and is tried again after ``retry_after``; with none valid, the request fails with the retryable
    ``CredentialsUnavailableError``.
    """

    def __init__(
        self,
        fetch: Callable[[], Credentials],
        *,
        clock: Callable[[], datetime] = _utc_now,
        margin: timedelta = RENEW_MARGIN,
        retry_after: timedelta = RETRY_AFTER,
        learn: Callable[[Iterable[str]], None] = mask_secrets,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._retry_after = retry_after
        self._learn = learn
        self._close = close
        self._lock = threading.Lock()
        self._held: Credentials | None = None
        self._previous: Credentials | None = None
        self._next_try = datetime.min.replace(tzinfo=timezone.utc)
        self._failure: CredentialsUnavailableError | None = None

    @classmethod
    def from_endpoint(cls, endpoint: str) -> MetadataCredentials:
        """Read from the metadata service at ``endpoint`` (``http://169.254.169.254`` on an ECS), directly: a proxy
        from the environment must not carry a link-local call."""
        http = httpx.Client(timeout=_TIMEOUT, trust_env=False, headers={"Accept": "application/json"})
        return cls(metadata_fetch(endpoint, http), close=http.close)

    def current(self) -> Credentials:
        now = self._clock()
        held = self._held
        if held is not None and _fresh(held, now):
            return held
        valid = _valid(held, now)
        if valid is None:
            self._lock.acquire()  # nothing to sign with meanwhile: wait for the renewal
        elif not self._lock.acquire(blocking=False):
            return valid  # another thread is renewing them
        try:
            return self._renew(stale=None)
        finally:
            self._lock.release()

    def renewed(self, refused: Credentials) -> Credentials | None:
        with self._lock:
            try:
                return self._renew(stale=refused)
            except CredentialsUnavailableError:
                return None

    def secret_values(self) -> list[str]:
        # The ones before too: an answer to a request signed with them may still be on its way.
        return [value for held in (self._held, self._previous) if held is not None for value in held.secret_values()]

    def close(self) -> None:
        self._close()

    def _renew(self, stale: Credentials | None) -> Credentials:
        """Under the lock: the credentials held if they are still good (another thread renewed them, or a failed
        renewal is too recent to try again), else new ones. ``stale`` were refused by the gateway: they are
        replaced unless another thread has already done it."""
        now = self._clock()
        held = self._held
        # Another thread got new ones while this one waited for the lock.
        if held is not None and held is not stale and (stale is not None or _fresh(held, now)):
            return held
        keep = _valid(held, now) if held is not stale else None
        if now < self._next_try:
            if keep is not None:
                return keep
            raise self._unavailable(held, self._failure)
        try:
            fresh = self._fetch()
        except CredentialsUnavailableError as error:
            self._next_try = now + self._retry_after
            self._failure = error
            if keep is not None:
                log.warning("temporary credentials not renewed (%s); the current ones stay in use", error)
                return keep
            raise self._unavailable(held, error) from error
        self._learn(fresh.secret_values())
        assert fresh.expires_at is not None  # a temporary credential always has one (metadata_fetch checks)
        fresh = replace(fresh, renew_at=renewal_time(now, fresh.expires_at, self._margin))
        self._held, self._previous, self._failure = fresh, held, None
        log.info("temporary credentials obtained, valid until %s", fresh.expires_at.isoformat(timespec="seconds"))
        return fresh

    @staticmethod
    def _unavailable(
        held: Credentials | None, error: CredentialsUnavailableError | None
    ) -> CredentialsUnavailableError:
        what = "temporary credentials not obtained" if held is None else "temporary credentials expired"
        reason = f": {error}" if error is not None else ""
        return CredentialsUnavailableError(f"{what}, and the metadata service gave no new ones{reason}")


def _fresh(held: Credentials, now: datetime) -> bool:
    """Not yet due for renewal."""
    return held.renew_at is not None and now < held.renew_at


def _valid(held: Credentials | None, now: datetime) -> Credentials | None:
    """``held`` while it may still be signed with."""
    if held is not None and held.expires_at is not None and now < held.expires_at:
        return held
    return None


def metadata_fetch(endpoint: str, http: httpx.Client) -> Callable[[], Credentials]:
    """One read of ``GET <endpoint>/openstack/latest/securitykey``: ``{"credential": {"access", "secret",
    "securitytoken", "expires_at"}}``. Its body is never quoted in an error: a good one holds the secrets."""
    url = endpoint.rstrip("/") + SECURITY_KEY_PATH

    def fetch() -> Credentials:
        try:
            response = http.get(url)
        except httpx.TransportError as exc:
            raise CredentialsUnavailableError(
                f"metadata service unreachable ({type(exc).__name__})", endpoint=ENDPOINT
            ) from exc
        if not response.is_success:
            hint = " (is an agency attached to the server?)" if response.status_code in (401, 404) else ""
            raise CredentialsUnavailableError(
                f"metadata service refused{hint}", endpoint=ENDPOINT, status_code=response.status_code
            )
        try:
            body = response.json()["credential"]
            expires_at = parse_time(body["expires_at"])
            if expires_at is None:
                raise ValueError("expires_at")
            return Credentials(
                SecretStr(str(body["access"])),
                SecretStr(str(body["secret"])),
                SecretStr(str(body["securitytoken"])),
                expires_at=expires_at,
            )
        except (ValueError, KeyError, TypeError):
            raise CredentialsUnavailableError(
                "metadata service: malformed answer", endpoint=ENDPOINT, status_code=response.status_code
            ) from None

    return fetch
