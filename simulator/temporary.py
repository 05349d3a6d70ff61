"""Temporary AK/SK the metadata service handed out: each with its security token, valid for a lifetime."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

_UPPER = string.ascii_uppercase + string.digits
_MIXED = string.ascii_letters + string.digits
_TOKEN = _MIXED + "+/="


@dataclass(frozen=True)
class TemporaryKey:
    access_key: str
    secret_key: str
    security_token: str
    expires_at: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


class TemporaryKeys:
    """Issued keys by AK; an expired one is kept, so that it is refused as expired rather than unknown."""

    def __init__(self, stream: random.Random, lifetime: float) -> None:
        self._stream = stream
        self._keys: dict[str, TemporaryKey] = {}
        self.lifetime = lifetime

    def issue(self, now: float) -> TemporaryKey:
        # Shaped like Huawei's: a 20-character AK, a 40-character SK and a long opaque token.
        pick = self._stream.choice
        key = TemporaryKey(
            access_key="".join(pick(_UPPER) for _ in range(20)),
            secret_key="".join(pick(_MIXED) for _ in range(40)),
            security_token="gQ" + "".join(pick(_TOKEN) for _ in range(318)),
            expires_at=now + self.lifetime,
        )
        self._keys[key.access_key] = key
        return key

    def get(self, access_key: str) -> TemporaryKey | None:
        return self._keys.get(access_key)

    def issued(self) -> list[TemporaryKey]:
        """Every key handed out, oldest first (the secret scan looks for each of them)."""
        return list(self._keys.values())
