"""Idempotency keys: a request sent again with the same ``Idempotency-Key`` finds what the first one created.

The key's record (``P:idempotency:<sha-256 of the key>``) holds the request's fingerprint (route and body) and what
it created (a batch or a plan). It is written in the same MULTI/EXEC as the records it names, under WATCH, so two
requests racing with one key cannot both create: the loser's transaction is refused and it finds the winner's
record. A lost reply is safe too: redis-py does not resend a transaction whose connection dropped while it was
watching (it raises ``WatchError``), so the caller looks again and finds its own record if the first one landed.
Records expire after the setting ``idempotency_seconds``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from worker.data.connection import Durability
from worker.data.keyspace import Keyspace


@dataclass(frozen=True)
class Claim:
    """A request's claim on a key: the key as the client sent it, what the request was, and how long to keep it."""

    key: str
    fingerprint: str
    ttl: int


@dataclass(frozen=True)
class Earlier:
    """What the first request with a key created: ``kind`` (``batch`` or ``plan``) and its ID."""

    fingerprint: str
    kind: str
    id: str


def digest(key: str) -> str:
    # Keys are the client's text, of any characters: the keyspace holds a fixed-length digest instead.
    return hashlib.sha256(key.encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, client: redis.Redis, keys: Keyspace, durability: Durability | None = None) -> None:
        self._redis = client
        self._keys = keys
        self._durability = durability or Durability()

    def find(self, key: str) -> Earlier | None:
        return _earlier(self._redis.hgetall(self._keys.idempotency(digest(key))))

    def confirm(self) -> None:
        """Make sure what an earlier request wrote is on the replicas (``NotReplicated`` if not in time): a replay
        answers 202 only for a record that would outlive a failover."""
        self._durability.confirm(self._redis, self._keys.fence())

    def write_once(self, claim: Claim, created: Earlier, write: Callable[[Pipeline], None]) -> Earlier | None:
        """Run ``write`` and record ``created`` under the claim, in one transaction, unless the key is taken;
        returns the earlier record when it is (nothing written then). The transaction is confirmed by the
        replicas (``NotReplicated`` otherwise; see ``worker.data.connection``)."""
        name = self._keys.idempotency(digest(claim.key))
        with self._durability.pipeline(self._redis) as pipe:
            while True:
                try:
                    pipe.watch(name)
                    earlier = _earlier(pipe.hgetall(name))
                    if earlier is not None:
                        return earlier
                    pipe.multi()
                    write(pipe)
                    record = {"fingerprint": created.fingerprint, "kind": created.kind, "id": created.id}
                    pipe.hset(name, mapping=record)
                    pipe.expire(name, claim.ttl)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue  # another request took the key, or the reply was lost: look again
        self._durability.require_replicas(pipe)
        return None


def _earlier(data: dict[str, str]) -> Earlier | None:
    return Earlier(data["fingerprint"], data["kind"], data["id"]) if data else None
