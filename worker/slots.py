"""The per-account slot pool: at most ``slot_limit`` items of an account run an IMS copy at once, cluster-wide.

Redis keys (``P`` is the key prefix)::

    P:slots:<account>   zset  item ID -> time the slot was granted   (the API's /metrics reads its ZCARD)
    P:wait:<account>    zset  item ID -> arrival time, oldest first  (items in ``waiting`` without a slot)

A slot belongs to an ITEM, from the grant (just before its submit) to its terminal state, not to a worker process:
a crashed worker neither frees the slot of a copy IMS is still running nor keeps one forever, because the
reconciler frees the slots of terminal or missing items. Granting is one Lua script, so concurrent grants on any
number of workers never exceed the limit, and it reads each candidate's stored state so a cancelled item is dropped
from the queue instead of taking a slot. (The scripts read item hashes they are not handed as KEYS: fine on a single
Redis server, which is what this project runs on; not Redis Cluster-safe.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

# Grant free slots to the oldest waiting items; drop queue entries whose item is no longer waiting.
_ADMIT = """
local slots, wait, item_prefix = KEYS[1], KEYS[2], ARGV[1]
local limit, now, max_scan = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local granted = {}
local scanned = 0
while redis.call('ZCARD', slots) < limit and scanned < max_scan do
  local head = redis.call('ZRANGE', wait, 0, 0)
  if #head == 0 then break end
  local id = head[1]
  redis.call('ZREM', wait, id)
  scanned = scanned + 1
  if redis.call('HGET', item_prefix .. id, 'state') == 'waiting' and not redis.call('ZSCORE', slots, id) then
    redis.call('ZADD', slots, now, id)
    granted[#granted + 1] = id
  end
end
return granted
"""


class SlotPool:
    """Replication slots of every account, shared by all workers through Redis."""

    # Bounds one admit call's work when a long run of cancelled items sits at the head of a queue.
    MAX_SCAN = 1000

    def __init__(self, client: redis.Redis, prefix: str = "imsrep") -> None:
        self.redis = client
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)

    def slots_key(self, account: str) -> str:
        return f"{self.prefix}:slots:{account}"

    def wait_key(self, account: str) -> str:
        return f"{self.prefix}:wait:{account}"

    def enqueue(self, account: str, item_id: str, arrival: float) -> None:
        """Put a waiting item in its account's queue; a second call keeps its first place (NX)."""
        self.redis.zadd(self.wait_key(account), {item_id: arrival}, nx=True)

    def admit(self, account: str, limit: int, now: float | None = None) -> list[str]:
        """Grant free slots to the oldest items still ``waiting``; returns the IDs whose submit must be enqueued."""
        now = time.time() if now is None else now
        granted = self._admit(
            keys=[self.slots_key(account), self.wait_key(account)],
            args=[f"{self.prefix}:item:", limit, now, self.MAX_SCAN],
        )
        return [g.decode() if isinstance(g, bytes) else g for g in granted]

    def release(self, account: str, item_id: str) -> bool:
        """Free the item's slot (and any queue entry); True if it held one."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.slots_key(account), item_id)
        pipe.zrem(self.wait_key(account), item_id)
        held, _ = pipe.execute()
        return bool(held)

    def restore(self, account: str, item_id: str, now: float | None = None) -> bool:
        """Record a slot for an item already past its grant (submitting/replicating) whose entry was lost."""
        now = time.time() if now is None else now
        return bool(self.redis.zadd(self.slots_key(account), {item_id: now}, nx=True))

    def holds(self, account: str, item_id: str) -> bool:
        return self.redis.zscore(self.slots_key(account), item_id) is not None

    def holders(self, account: str) -> list[str]:
        return [_s(i) for i in self.redis.zrange(self.slots_key(account), 0, -1)]

    def in_use(self, account: str) -> int:
        return int(self.redis.zcard(self.slots_key(account)))

    def queued(self, account: str) -> int:
        return int(self.redis.zcard(self.wait_key(account)))

    def accounts(self, configured: Iterable[str] = ()) -> set[str]:
        """Configured accounts plus any account that has slot or queue keys (an account removed from settings)."""
        found = set(configured)
        for pattern in (f"{self.prefix}:slots:*", f"{self.prefix}:wait:*"):
            for key in self.redis.scan_iter(match=pattern, count=500):
                found.add(_s(key).rsplit(":", 1)[1])
        return found


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
