"""What the API keeps per principal to hold each one to its limits (docs/teams.md, "Limits"): a bucket of its
requests, and an index of its batches that may have unfinished items.

The index (``P:running:<principal>``) is written with the batch, in ``RecordStore.create_batch``'s transaction. A
count reads each indexed batch's counts hash, which the transitions keep anyway, so it costs a round trip for the
index and one for the sum, however many items the batches hold; batches that have ended leave the index as they are
counted (``lua/unfinished.lua``), and a retry puts its batch back (``reopen``).
"""

from __future__ import annotations

import redis

from worker.data.keyspace import Keyspace
from worker.data.scripts import register
from worker.domain.states import ItemState

_UNFINISHED = [state.value for state in ItemState if not state.terminal]


class PrincipalLimits:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys
        self._take_request = register(client, "take_request")
        self._unfinished = register(client, "unfinished")

    def take_request(self, principal: str, rate: float, burst: int) -> float:
        """Seconds until the principal may send a request: 0 when this one may (its token is taken), else how long
        until a token is there (nothing taken). ``rate`` tokens a second up to ``burst``, on Redis's clock."""
        return float(self._take_request(keys=[self._keys.requests(principal)], args=[rate, burst]))

    def unfinished(self, principal: str) -> int:
        """How many items of the principal's batches are in a non-terminal state."""
        index = self._keys.running(principal)
        batch_ids = self._redis.zrange(index, 0, -1)
        if not batch_ids:
            return 0
        keys = [index]
        for batch_id in batch_ids:
            keys += [self._keys.batch(batch_id), self._keys.batch_counts(batch_id)]
        return int(self._unfinished(keys=keys, args=[len(_UNFINISHED), *_UNFINISHED, *batch_ids]))

    def reopen(self, principal: str, batch_id: str, created_at: float) -> None:
        """Count the batch again: a retry gave it unfinished items after it had ended."""
        self._redis.zadd(self._keys.running(principal), {batch_id: created_at})
