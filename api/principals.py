"""Who calls the API: principals from the settings, from a file the API re-reads when it changes (a token is rotated
without a restart), and the tokens of ``IMSREP_API_TOKENS``, each an admin of every account (docs/teams.md)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tomllib
from pydantic import SecretStr, ValidationError

from config.settings import EVERY_ACCOUNT, PrincipalSettings, Role, Settings, SettingsError, principal_accounts_unknown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one principal may take of the service (``PrincipalSettings``; enforced by ``api.limits``)."""

    requests_per_second: float
    request_burst: int
    max_unfinished_items: int


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    accounts: frozenset[str] | None  # None: every account, now and later
    limits: Limits | None = None  # None: no limits (the admins of IMSREP_API_TOKENS)

    def at_least(self, role: Role) -> bool:
        return self.role.rank >= role.rank

    def outside(self, accounts: Iterable[str]) -> list[str]:
        """The accounts among ``accounts`` this principal may not act in, sorted."""
        return [] if self.accounts is None else sorted(set(accounts) - self.accounts)

    def sees(self, accounts: Iterable[str] | None) -> bool:
        """Whether a record acting in ``accounts`` is in scope: all of them must be its own. A record stored before
        ownership was kept (None) is seen by principals of every account only."""
        return self.accounts is None or (accounts is not None and not self.outside(accounts))


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    digest: bytes  # SHA-256 of the token


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _entry(name: str, spec: PrincipalSettings) -> _Entry:
    if spec.token is not None:
        digest = token_digest(spec.token.get_secret_value())
    else:
        assert spec.token_sha256 is not None  # PrincipalSettings requires one of the two
        digest = bytes.fromhex(spec.token_sha256)
    accounts = None if EVERY_ACCOUNT in spec.accounts else frozenset(spec.accounts)
    limits = Limits(spec.requests_per_second, spec.request_burst, spec.max_unfinished_items)
    return _Entry(Principal(name, spec.role, accounts, limits), digest)


def _token_entries(tokens: Iterable[SecretStr]) -> list[_Entry]:
    return [
        _Entry(Principal(f"api-token-{n}", Role.ADMIN, None), token_digest(token.get_secret_value()))
        for n, token in enumerate(tokens, 1)
    ]


def read_principals_file(path: Path, settings: Settings) -> dict[str, PrincipalSettings]:
    """The principals of a TOML file (a table per principal, the settings' fields), checked as the settings are.
    Raises SettingsError naming the file and what is wrong."""
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"IMSREP_PRINCIPALS_FILE {path}: cannot be read ({exc})") from None
    found: dict[str, PrincipalSettings] = {}
    for name, table in tables.items():
        where = f"IMSREP_PRINCIPALS_FILE {path}: principal {name!r}"
        if name in settings.principals:
            raise SettingsError(f"{where} is also configured in the environment; name it once")
        if not isinstance(table, dict):
            raise SettingsError(f"{where} must be a table ([{name}] with token_sha256, role, accounts)")
        try:
            spec = PrincipalSettings.model_validate(table)
        except ValidationError as exc:
            rules = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors())
            raise SettingsError(f"{where}: {rules}") from None
        if unknown := principal_accounts_unknown(spec, settings.accounts):
            raise SettingsError(f"{where}: accounts: {unknown}")
        found[name] = spec
    return found


def _distinct(entries: list[_Entry]) -> list[_Entry]:
    """Refuse two principals with one token: which of them called could not be told."""
    seen: dict[bytes, str] = {}
    for entry in entries:
        if (other := seen.setdefault(entry.digest, entry.principal.name)) != entry.principal.name:
            raise SettingsError(f"principals {other} and {entry.principal.name} have the same token")
    return entries


class PrincipalRegistry:
    """Finds the principal a bearer token belongs to. The file is checked at each call (one ``stat``): a change is
    seen by the next request. A file that turns invalid is logged and its last valid contents kept, so a typo
    neither locks every team out nor lets anyone in; at start-up it is refused."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._fixed = [_entry(name, spec) for name, spec in settings.principals.items()]
        self._fixed += _token_entries(settings.api_tokens)
        self._file = settings.principals_file
        self._stamp: tuple[int, int, int] | None = None
        self._entries = _distinct(list(self._fixed))
        self._lock = threading.Lock()
        if self._file is not None:
            self._reload(self._stat(), strict=True)
        if not self._entries:
            raise SettingsError(
                "no API principals configured: set IMSREP_API_TOKENS (admin tokens), IMSREP_PRINCIPALS__<NAME>__... "
                "or IMSREP_PRINCIPALS_FILE"
            )

    def authenticate(self, token: str) -> Principal | None:
        """The principal whose token this is. Every digest is compared, in constant time, even after a match."""
        self._refresh()
        given = token_digest(token)
        found: Principal | None = None
        for entry in self._entries:
            if hmac.compare_digest(given, entry.digest) and found is None:
                found = entry.principal
        return found

    def names(self) -> Mapping[str, Principal]:
        self._refresh()
        return {entry.principal.name: entry.principal for entry in self._entries}

    def _stat(self) -> tuple[int, int, int] | None:
        assert self._file is not None
        try:
            st = os.stat(self._file)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _refresh(self) -> None:
        if self._file is None:
            return
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._reload(stamp, strict=False)

    def _reload(self, stamp: tuple[int, int, int] | None, *, strict: bool) -> None:
        assert self._file is not None
        try:
            found = read_principals_file(self._file, self._settings)
            entries = _distinct(self._fixed + [_entry(name, spec) for name, spec in found.items()])
        except SettingsError as exc:
            if strict:
                raise
            log.error("%s; keeping the principals read before", exc)
        else:
            self._entries = entries
            log.info("principals file %s read: %d principals", self._file, len(found))
        self._stamp = stamp
