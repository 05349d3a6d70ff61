"""IAM tokens the simulator issued: opaque strings scoped to one project, valid for a TTL, revocable."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.randomness import SeededStreams


@dataclass
class Token:
    project_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False

    def valid(self, now: float) -> bool:
        return not self.revoked and now < self.expires_at


class TokenStore:
    def __init__(self, streams: SeededStreams, ttl_seconds: float) -> None:
        self._streams = streams
        self._tokens: dict[str, Token] = {}
        self.ttl_seconds = ttl_seconds

    def issue(self, project_id: str, now: float) -> tuple[str, Token]:
        value = self._streams.token()
        token = Token(project_id, now, now + self.ttl_seconds)
        self._tokens[value] = token
        return value, token

    def get(self, value: str) -> Token | None:
        return self._tokens.get(value)

    def revoke(self, value: str | None = None) -> int:
        """Revoke one token, or every token when ``value`` is None; return how many were still valid."""
        targets = [self._tokens[value]] if value in self._tokens else [] if value else list(self._tokens.values())
        count = sum(1 for token in targets if not token.revoked)
        for token in targets:
            token.revoked = True
        return count
