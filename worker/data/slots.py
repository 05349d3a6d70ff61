"""The slot pools: at most ``slot_limit`` items of a pool run an IMS copy at once, cluster-wide. A pool is a name
(``worker.domain.pools``: an account's in-region copies, or ``<account>:cross-region``); the methods' ``account``
argument is that name.

A slot belongs to an ITEM, from the grant (just before its submit) to its terminal state, not to a worker process:
a crashed worker neither frees the slot of a copy IMS is still running nor keeps one forever, because the
reconciler frees the slots of terminal or missing items. Granting is one script (``lua/grant.lua``), so concurrent
grants on any number of workers never exceed the limit, and a cancelled item is dropped from the queue instead of
taking a slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from worker.data.keyspace import Keyspace
from worker.data.scripts import register
from worker.domain.item import ReplicationItem
from worker.domain.pools import pool_of
from worker.domain.states import ItemState


class SlotPool:
    """Replication slots of every account, shared by all workers through Redis."""

    # Bounds one grant's work when a long run of cancelled items sits at the head of a queue.
    MAX_SCAN = 1000

    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys
        self._grant = register(client, "grant")

    def enqueue(self, account: str, item_id: str, arrival: float) -> bool:
        """Put a waiting item in its account's queue; a second call keeps its first place. True if it was added."""
        return bool(self._redis.zadd(self._keys.wait(account), {item_id: arrival}, nx=True))

    def grant(self, account: str, limit: int, now: float) -> list[str]:
        """Grant free slots to the oldest items still ``waiting``; returns the IDs whose submit must be sent."""
        keys = [self._keys.slots(account), self._keys.wait(account)]
        args = [limit, now, self.MAX_SCAN, ItemState.WAITING.value, self._keys.item("")]
        return self._grant(keys=keys, args=args)

    def release(self, account: str, item_id: str) -> bool:
        """Free the item's slot (and any queue entry); True if it held one."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(self._keys.slots(account), item_id)
        pipe.zrem(self._keys.wait(account), item_id)
        held, _ = pipe.execute()
        return bool(held)

    def restore(self, account: str, item_id: str, now: float) -> bool:
        """Record a slot for an item already past its grant (submitting/replicating) whose entry was lost."""
        return bool(self._redis.zadd(self._keys.slots(account), {item_id: now}, nx=True))

    def holds(self, account: str, item_id: str) -> bool:
        return self._redis.zscore(self._keys.slots(account), item_id) is not None

    def holding(self, items: Sequence[ReplicationItem]) -> list[bool]:
        """For each item, whether it holds a slot of its pool (one round trip)."""
        pipe = self._redis.pipeline(transaction=False)
        for item in items:
            pipe.zscore(self._keys.slots(pool_of(item)), item.id)
        return [score is not None for score in pipe.execute()]

    def holders(self, account: str) -> list[str]:
        return self._redis.zrange(self._keys.slots(account), 0, -1)

    def in_use(self, account: str) -> int:
        return int(self._redis.zcard(self._keys.slots(account)))

    def in_use_by_account(self, accounts: Sequence[str]) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for account in accounts:
            pipe.zcard(self._keys.slots(account))
        return dict(zip(accounts, (int(n) for n in pipe.execute()), strict=True))

    def queued(self, account: str) -> int:
        return int(self._redis.zcard(self._keys.wait(account)))

    def accounts(self, configured: Iterable[str] = ()) -> set[str]:
        """Configured accounts' pools plus any pool that has slot or queue keys (an account removed from settings,
        a pool of cross-region copies)."""
        found = set(configured)
        for pattern in self._keys.slot_patterns():
            for key in self._redis.scan_iter(match=pattern, count=500):
                found.add(self._keys.account_of(key))
        return found
