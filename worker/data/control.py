"""Coordination between deliveries of Celery messages: locks, and how often a message was handed out."""

from __future__ import annotations

import redis
from redis.lock import Lock

from worker.data.keyspace import Keyspace
from worker.data.lease import Lease

DELIVERY_MEMORY = 86_400  # seconds a message's delivery count is kept


class Control:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys

    def submit_lock(self, item_id: str, lease: float) -> Lease:
        """Held while one delivery of an item's submit runs, so two cannot call copy side by side; in leases of
        ``lease`` seconds, so that one whose holder is gone (or whose release a failover lost) frees soon. Taken by
        a ``with`` statement (``as``: whether it was), and held no longer than that statement runs."""
        return Lease(self._redis.lock(self._keys.submit_lock(item_id), timeout=lease, thread_local=False))

    def submit_lock_left(self, item_id: str) -> float:
        """Seconds until an item's submit lock expires (0 if it is not held)."""
        return max(0.0, self._redis.pttl(self._keys.submit_lock(item_id)) / 1000)

    def step_lock(self, task: str, timeout: float) -> Lock:
        """Held while an exclusive step runs (the reconciler, ``worker.registry``): one run at a time cluster-wide."""
        return self._redis.lock(self._keys.step_lock(task), timeout=timeout)

    def beat_lock(self, timeout: float) -> Lock:
        """Held (and renewed) by the one beat that sends the schedule; the others stand by until it expires."""
        return self._redis.lock(self._keys.beat_lock(), timeout=timeout, thread_local=False)

    def replaced_at(self, now: float) -> float:
        """When the reconciler first met the Redis server process it meets now, if that one replaced another it had
        met (a replica a failover promoted, or a restarted server); 0 if it is the first it has met."""
        key = self._keys.primary()
        run_id = str(self._redis.info("server")["run_id"])
        known, since = self._redis.hmget(key, "run_id", "since")
        if known == run_id:
            return float(since or 0.0)
        since = now if known is not None else 0.0
        self._redis.hset(key, mapping={"run_id": run_id, "since": since})
        return since

    def count_delivery(self, message_id: str) -> int:
        """One more delivery of a Celery message; returns how many there have been."""
        key = self._keys.deliveries(message_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, DELIVERY_MEMORY)
        return int(pipe.execute()[0])
