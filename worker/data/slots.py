"""Replication slots: at most a pool's limit of its items run an IMS copy at once, cluster-wide, shared fairly
between the pool's batches, within the image quota, and not while the account's circuit is open.

A slot belongs to an ITEM, from the grant (just before its submit) to its terminal state (or its hand-back when
IMS says it is full), not to a worker process: a crashed worker neither frees the slot of a copy IMS is still
running nor keeps one forever (the reconciler frees the slots of finished or missing items). Granting is one script
(``lua/grant.lua``), so concurrent grants on any number of workers never exceed the limit. Waiting items are kept
per batch (``lua/enqueue.lua``), in the order of the batch's rows: the batch with the lowest pass goes next, its
pass grows by its stride, and a batch that starts waiting joins one set of slots behind the pool's virtual time,
so it takes the next slots that free up and then alternates with the others (weighted by priority).
``P:waiting:<pool>`` holds one entry per queued item, so the backlog shows as a queue length in Flower.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from worker.data.accounts import OPEN
from worker.data.keyspace import Keyspace
from worker.data.scripts import register
from worker.domain.item import ReplicationItem
from worker.domain.pools import Pool
from worker.domain.states import ItemState


@dataclass(frozen=True)
class Capacity:
    effective: int | None  # None: the configured limit; lower while IMS says others hold slots
    raise_at: float | None


@dataclass(frozen=True)
class Quota:
    quota: int | None  # None: not read yet
    used: int
    pending: int  # slots granted since ``used`` was read (their copies may not be counted yet)
    checked_at: float | None
    blocked_since: float | None  # since when no headroom has been left, if none is
    exhausted: bool  # IMS refused a copy for the quota since the last read
    granted: int = 0  # slots ever granted in the project's pools: what a read counts the grants during it by

    @property
    def headroom(self) -> int | None:
        if self.exhausted:
            return 0
        return None if self.quota is None else max(0, self.quota - self.used - self.pending)


@dataclass(frozen=True)
class QuotaAge:
    """How old a project's quota reading may be at a grant: ``refresh`` seconds once ``tight`` or less headroom is
    left (or IMS refused a copy for it), ten times that with more room. Before the first reading, none will do."""

    refresh: float
    tight: int


@dataclass(frozen=True)
class Granted:
    """What one grant did: the items given a slot, with their source images and (cross-region) destinations; or
    nothing, because the quota must be read first (``stale``)."""

    ids: list[str]
    image_ids: list[str]
    regions: list[str | None]
    stale: bool = False


def quota_from(data: dict[str, str]) -> Quota:
    """A ``P:quota:<project>`` hash as a ``Quota``."""

    def number(name: str) -> float | None:
        return float(data[name]) if name in data else None

    quota = number("quota")
    return Quota(
        quota=None if quota is None else int(quota),
        used=int(number("used") or 0),
        pending=int(number("pending") or 0),
        checked_at=number("checked_at"),
        blocked_since=number("blocked_since"),
        exhausted="exhausted" in data,
        granted=int(number("granted") or 0),
    )


class SlotPool:
    # Bounds one grant's work when a long run of cancelled items sits at the head of a queue.
    MAX_SCAN = 1000

    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys
        self._enqueue = register(client, "enqueue")
        self._dequeue = register(client, "dequeue")
        self._grant = register(client, "grant")

    # Queueing and granting ------------------------------------------------------------------------------------
    def enqueue(self, pool: Pool, item: ReplicationItem, arrival: float, stride: float, *, pipe=None) -> bool:
        """Queue a waiting item in its batch's line of ``pool`` at its position in the batch, so that however late
        it was validated it goes ahead of the batch's later rows (a record stored before positions were kept: at
        its ``arrival``, behind them); a second call keeps its first place. True if it was added. ``pipe`` runs it
        inside a caller's transaction (then the answer comes from ``execute``)."""
        k = self._keys
        keys = [k.batch_queue(pool.name, item.batch_id), k.ring(pool.name), k.pool(pool.name), k.waiting(pool.name)]
        place = arrival if item.position is None else item.position
        args = [item.id, place, item.batch_id, stride, pool.limit]
        return bool(self._enqueue(keys=keys, args=args, client=pipe or self._redis))

    def grant(self, pool: Pool, now: float, quota_age: QuotaAge | None = None) -> Granted:
        """Grant free slots of ``pool``: the items whose submit must be sent (their due time is set). With
        ``quota_age``, nothing is granted (``stale``) while the pool's quota reading is older than it allows."""
        k = self._keys
        keys = [
            k.slots(pool.name),
            k.ring(pool.name),
            k.pool(pool.name),
            k.waiting(pool.name),
            k.health(pool.account),
            k.quota(pool.project or ""),  # no project: nothing ever writes that key, so no quota bound
            k.due(),
        ]
        args = [
            pool.limit,
            now,
            self.MAX_SCAN,
            ItemState.WAITING.value,
            k.item(""),
            k.batch_queue(pool.name, ""),
            OPEN,
            *((quota_age.refresh, quota_age.tight) if quota_age and pool.project else ("", 0)),
            "1" if pool.project else "",
        ]
        stale, ids, image_ids, regions = self._grant(keys=keys, args=args)
        return Granted(ids, image_ids, [region or None for region in regions], bool(stale))

    def release(self, pool: str, item: ReplicationItem, *, pipe=None) -> bool:
        """Take the item out of ``pool``: its slot, or its place in line. True if it held a slot."""
        k = self._keys
        keys = [k.slots(pool), k.batch_queue(pool, item.batch_id), k.ring(pool), k.pool(pool), k.waiting(pool)]
        return bool(self._dequeue(keys=keys, args=[item.id, item.batch_id], client=pipe or self._redis))

    def hand_on(self, pool: Pool, item: ReplicationItem, stride: float, now: float) -> bool:
        """Free the slot of a waiting item that nothing will submit (no step of it is due, no delivery holds its
        submit lock) and put it back in its batch's line at its place, for the next grant; True if it did. The item
        and its lock are watched, so that a submit that starts meanwhile keeps the slot (the next reconciler pass
        looks again); the busy due and slot sets are not: only a message for the item sets its due time, and only
        its own moves (watched) free its slot, while it holds one and waits."""
        k = self._keys
        with self._redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(k.item(item.id), k.submit_lock(item.id))
                idle = (
                    pipe.hget(k.item(item.id), "state") == ItemState.WAITING.value
                    and pipe.zscore(k.due(), item.id) is None
                    and not pipe.exists(k.submit_lock(item.id))
                    and pipe.zscore(k.slots(pool.name), item.id) is not None
                )
                if not idle:
                    return False
                pipe.multi()
                self.release(pool.name, item, pipe=pipe)
                self.enqueue(pool, item, item.queued_at or now, stride, pipe=pipe)
                pipe.execute()
            except redis.WatchError:
                return False
        return True

    def free(self, pool: str, item_id: str) -> bool:
        """Free a slot whose item is finished or gone (the reconciler's repair); True if it was held."""
        return bool(self._redis.zrem(self._keys.slots(pool), item_id))

    def restore(self, pool: str, item_ids: Sequence[str], now: float) -> int:
        """Record slots for items already past their grant whose entries were lost; returns how many were."""
        if not item_ids:
            return 0
        return int(self._redis.zadd(self._keys.slots(pool), dict.fromkeys(item_ids, now), nx=True))

    # IMS's own view ----------------------------------------------------------------------------------------
    def lower_capacity(self, pool: str, now: float, first_raise: float, longest_raise: float) -> float:
        """IMS said the pool is full although it holds fewer of our copies than its limit: copies made elsewhere
        hold the rest. Grant no more than ours now, and try one more after a wait that doubles each time IMS
        still says full. Returns that wait."""
        k = self._keys
        in_use = self._redis.zcard(k.slots(pool))
        previous = self._redis.hget(k.pool(pool), "raise_interval")
        wait = first_raise if previous is None else min(longest_raise, 2 * float(previous))
        self._redis.hset(k.pool(pool), mapping={"effective": in_use, "raise_interval": wait, "raise_at": now + wait})
        return wait

    def capacity(self, pool: str) -> Capacity:
        data = self._redis.hmget(self._keys.pool(pool), "effective", "raise_at")
        return Capacity(int(data[0]) if data[0] else None, float(data[1]) if data[1] else None)

    def set_quota(
        self, project: str, quota: int, used: int, pending: int, now: float, *, granted_since: int | None = None
    ) -> Quota:
        """Record a fresh read of the project's image quota; ``pending`` copies granted but not yet counted. With
        ``granted_since`` (``Quota.granted`` when the read began), grants made during the read are added: counted
        by a total that only grows, so reads that overlap (step threads of one pool) each count them all."""
        key = self._keys.quota(project)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    if granted_since is not None:
                        pending += max(0, int(pipe.hget(key, "granted") or 0) - granted_since)
                    pipe.multi()
                    pipe.hset(key, mapping={"quota": quota, "used": used, "pending": pending, "checked_at": now})
                    pipe.hdel(key, "exhausted")
                    if quota - used - pending > 0:
                        pipe.hdel(key, "blocked_since")
                    else:
                        pipe.hsetnx(key, "blocked_since", now)
                    pipe.execute()
                    break
                except redis.WatchError:  # a grant or another read changed it meanwhile: count again
                    continue
        return self.quota(project)

    def exhaust_quota(self, project: str, now: float, *, checked_at: float | None = None) -> None:
        """IMS refused a copy for the quota: nothing more until the next read says otherwise. ``checked_at`` (``now``
        unless given) is when the reading counts as made, which sets when the grant script asks for the next."""
        key = self._keys.quota(project)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"exhausted": 1, "checked_at": now if checked_at is None else checked_at})
        pipe.hsetnx(key, "blocked_since", now)
        pipe.execute()

    def quota(self, project: str) -> Quota:
        return quota_from(self._redis.hgetall(self._keys.quota(project)))

    # Reading ---------------------------------------------------------------------------------------------------
    def holds(self, pool: str, item_id: str) -> bool:
        return self._redis.zscore(self._keys.slots(pool), item_id) is not None

    def holding(self, pool_items: Sequence[tuple[str, ReplicationItem]]) -> list[bool]:
        """For each (pool, item), whether the item holds a slot of that pool (one round trip)."""
        pipe = self._redis.pipeline(transaction=False)
        for pool, item in pool_items:
            pipe.zscore(self._keys.slots(pool), item.id)
        return [score is not None for score in pipe.execute()]

    def holders(self, pool: str) -> list[str]:
        return self._redis.zrange(self._keys.slots(pool), 0, -1)

    def in_use(self, pool: str) -> int:
        return int(self._redis.zcard(self._keys.slots(pool)))

    def queued(self, pool: str) -> int:
        return int(self._redis.llen(self._keys.waiting(pool)))

    def usage(self, pools: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(slots in use, items queued) per pool, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for pool in pools:
            pipe.zcard(self._keys.slots(pool))
            pipe.llen(self._keys.waiting(pool))
        found = pipe.execute()
        return {pool: (int(found[2 * i]), int(found[2 * i + 1])) for i, pool in enumerate(pools)}

    def batch_queued(self, pools: Sequence[str], batch_id: str) -> dict[str, int]:
        """Items of one batch in each pool's line, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for pool in pools:
            pipe.zcard(self._keys.batch_queue(pool, batch_id))
        return {pool: int(n) for pool, n in zip(pools, pipe.execute(), strict=True)}

    def queued_items(self, pool: str, limit: int = 10_000) -> list[str]:
        """IDs of items in the pool's lines, batch by batch, at most ``limit``."""
        found: list[str] = []
        for batch_id in self._redis.zrange(self._keys.ring(pool), 0, -1):
            found += self._redis.zrange(self._keys.batch_queue(pool, batch_id), 0, limit - len(found) - 1)
            if len(found) >= limit:
                break
        return found

    def pools(self, configured: Iterable[str] = ()) -> set[str]:
        """Configured pools plus any pool with slots or waiting batches (an account removed from settings)."""
        found = set(configured)
        for pattern in self._keys.pool_patterns():
            for key in self._redis.scan_iter(match=pattern, count=500):
                found.add(self._keys.pool_in_key(key))
        return found
