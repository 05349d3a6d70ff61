"""The record store: batches and items in Redis, with atomic, history-keeping state transitions.

Layout (``P`` is the key prefix, ``imsrep`` by default)::

    P:item:<id>            hash   the ReplicationItem's fields
    P:item:<id>:log        list   JSON transitions {state, at, reason, message}
    P:batch:<id>           hash   id, created_at, total
    P:batch:<id>:items     list   item IDs in submission order
    P:batch:<id>:counts    hash   state -> number of the batch's items in it
    P:state:<state>        zset   item ID -> time it entered that state (metrics, reconciler)
    P:batches              zset   batch ID -> created_at

A transition is one Lua script: it checks the current state against the allowed sources and moves the item, its
batch counts, its state index and its log together, so no reader ever sees them disagree and two workers racing
on the same item cannot both win. No secret is ever stored here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from worker.domain.item import ReplicationItem, Transition
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState, sources_of

_TRANSITION = """
local p, id, to, allowed, now, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = p .. ':item:' .. id
local cur = redis.call('HGET', key, 'state')
if not cur then return {'missing', ''} end
if not string.find(',' .. allowed .. ',', ',' .. cur .. ',', 1, true) then return {'refused', cur} end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, 'state', to, 'updated_at', now, unpack(fields))
if cur ~= to then
  redis.call('ZREM', p .. ':state:' .. cur, id)
  local counts = p .. ':batch:' .. redis.call('HGET', key, 'batch_id') .. ':counts'
  redis.call('HINCRBY', counts, cur, -1)
  redis.call('HINCRBY', counts, to, 1)
  redis.call('RPUSH', key .. ':log', entry)
end
redis.call('ZADD', p .. ':state:' .. to, now, id)
return {'ok', cur}
"""

# Update fields only while the item is in the expected state (progress of a job, say), without a transition.
_UPDATE_IF = """
local key = KEYS[1]
if redis.call('HGET', key, 'state') ~= ARGV[1] then return 0 end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
return 1
"""


@dataclass(frozen=True)
class NewItem:
    """An item ready to store: its spec with defaults applied and its account resolved."""

    spec: ItemSpec
    account: str


@dataclass(frozen=True)
class StoredBatch:
    batch_id: str
    item_ids: list[str]


@dataclass(frozen=True)
class TransitionResult:
    ok: bool
    previous: ItemState | None  # None when the item does not exist


@dataclass(frozen=True)
class BatchSummary:
    batch_id: str
    created_at: float
    total: int
    counts: dict[ItemState, int]

    @property
    def done(self) -> bool:
        return sum(n for s, n in self.counts.items() if s.terminal) >= self.total


class RecordStore:
    def __init__(self, client: redis.Redis, prefix: str = "imsrep") -> None:
        self.redis = client
        self.prefix = prefix
        self._transition = client.register_script(_TRANSITION)
        self._update_if = client.register_script(_UPDATE_IF)

    # Keys -----------------------------------------------------------------------------------------------------
    def item_key(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}"

    def state_key(self, state: ItemState) -> str:
        return f"{self.prefix}:state:{state.value}"

    def _batch_key(self, batch_id: str, suffix: str = "") -> str:
        return f"{self.prefix}:batch:{batch_id}{suffix}"

    # Writing ----------------------------------------------------------------------------------------------------
    def create_batch(self, items: Sequence[NewItem], now: float | None = None) -> StoredBatch:
        """Store a batch and all its items in one MULTI/EXEC round trip: all of it or none of it."""
        now = time.time() if now is None else now
        batch_id = uuid.uuid4().hex
        ids = [uuid.uuid4().hex for _ in items]
        entry = json.dumps({"state": ItemState.ACCEPTED.value, "at": now})
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._batch_key(batch_id), mapping={"id": batch_id, "created_at": now, "total": len(items)})
        pipe.hset(self._batch_key(batch_id, ":counts"), ItemState.ACCEPTED.value, len(items))
        pipe.zadd(f"{self.prefix}:batches", {batch_id: now})
        for start in range(0, len(ids), 1000):
            pipe.rpush(self._batch_key(batch_id, ":items"), *ids[start : start + 1000])
        for item_id, new in zip(ids, items, strict=True):
            record = ReplicationItem(
                id=item_id,
                batch_id=batch_id,
                account=new.account,
                state=ItemState.ACCEPTED,
                created_at=now,
                updated_at=now,
                **new.spec.model_dump(exclude={"account"}),
            )
            pipe.hset(self.item_key(item_id), mapping=_compact(record.to_redis()))
            pipe.rpush(f"{self.item_key(item_id)}:log", entry)
        if ids:
            pipe.zadd(self.state_key(ItemState.ACCEPTED), dict.fromkeys(ids, now))
        pipe.execute()
        return StoredBatch(batch_id, ids)

    def transition(
        self,
        item_id: str,
        to: ItemState,
        *,
        allowed_from: Iterable[ItemState] | None = None,
        reason: ReasonCode | None = None,
        message: str | None = None,
        now: float | None = None,
        **fields: object,
    ) -> TransitionResult:
        """Move an item to ``to`` if its current state allows it; set ``fields`` in the same atomic step.

        ``reason`` and ``message`` are stored on the item (cleared when not given) and in its history.
        """
        now = time.time() if now is None else now
        sources = sources_of(to) if allowed_from is None else frozenset(allowed_from)
        entry = {"state": to.value, "at": now}
        if reason is not None:
            entry["reason"] = reason.value
        if message is not None:
            entry["message"] = message
        flat = _flatten({**fields, "reason": reason, "message": message})
        status, previous = self._transition(
            args=[self.prefix, item_id, to.value, ",".join(s.value for s in sources), now, json.dumps(entry), *flat]
        )
        previous = previous.decode() if isinstance(previous, bytes) else previous
        status = status.decode() if isinstance(status, bytes) else status
        return TransitionResult(status == "ok", ItemState(previous) if previous else None)

    def update_if(self, item_id: str, state: ItemState, **fields: object) -> bool:
        """Set fields while the item is still in ``state``; False if it has moved on."""
        return bool(self._update_if(keys=[self.item_key(item_id)], args=[state.value, *_flatten(fields)]))

    def incr_field(self, item_id: str, field: str, by: int = 1) -> int:
        return int(self.redis.hincrby(self.item_key(item_id), field, by))

    # Reading ----------------------------------------------------------------------------------------------------
    def get_item(self, item_id: str) -> ReplicationItem | None:
        data = self.redis.hgetall(self.item_key(item_id))
        return ReplicationItem.from_redis(_decode(data)) if data else None

    def get_items(self, item_ids: Sequence[str]) -> list[ReplicationItem]:
        pipe = self.redis.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hgetall(self.item_key(item_id))
        return [ReplicationItem.from_redis(_decode(d)) for d in pipe.execute() if d]

    def history(self, item_id: str) -> list[Transition]:
        return [Transition(**json.loads(e)) for e in self.redis.lrange(f"{self.item_key(item_id)}:log", 0, -1)]

    def batch(self, batch_id: str) -> BatchSummary | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self._batch_key(batch_id))
        pipe.hgetall(self._batch_key(batch_id, ":counts"))
        meta, counts = pipe.execute()
        if not meta:
            return None
        meta, counts = _decode(meta), _decode(counts)
        return BatchSummary(
            batch_id=batch_id,
            created_at=float(meta["created_at"]),
            total=int(meta["total"]),
            counts={s: int(counts.get(s.value, 0)) for s in ItemState},
        )

    def batch_item_ids(self, batch_id: str, start: int = 0, stop: int = -1) -> list[str]:
        return [_s(i) for i in self.redis.lrange(self._batch_key(batch_id, ":items"), start, stop)]

    def batch_items(
        self, batch_id: str, *, state: ItemState | None = None, limit: int = 100, cursor: int = 0
    ) -> tuple[list[ReplicationItem], int | None]:
        """A page of a batch's items (optionally in one state) and the cursor of the next page, if any."""
        found: list[ReplicationItem] = []
        position = cursor
        chunk = max(limit, 200)
        while len(found) < limit:
            ids = self.batch_item_ids(batch_id, position, position + chunk - 1)
            if not ids:
                return found, None
            for offset, item in enumerate(self.get_items(ids)):
                if state is None or item.state == state:
                    found.append(item)
                    if len(found) == limit:
                        nxt = position + offset + 1
                        return found, nxt if nxt < self.batch_size(batch_id) else None
            position += len(ids)
        return found, position

    def batch_size(self, batch_id: str) -> int:
        return int(self.redis.llen(self._batch_key(batch_id, ":items")))

    def counts_by_state(self) -> dict[ItemState, int]:
        pipe = self.redis.pipeline(transaction=False)
        for s in ItemState:
            pipe.zcard(self.state_key(s))
        return dict(zip(ItemState, (int(n) for n in pipe.execute()), strict=True))

    def items_in_state(self, state: ItemState, *, entered_before: float = float("inf"), limit: int = 1000) -> list[str]:
        """IDs of items that entered ``state`` before a time, oldest first (for the reconciler)."""
        return [_s(i) for i in self.redis.zrangebyscore(self.state_key(state), "-inf", entered_before, 0, limit)]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(data: dict) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in data.items()}


def _compact(mapping: dict[str, str]) -> dict[str, str]:
    """Leave empty fields out of a new record: they read back as None and cost no memory."""
    return {k: v for k, v in mapping.items() if v != ""}


def _flatten(fields: dict[str, object]) -> list[str]:
    flat: list[str] = []
    for key, value in fields.items():
        if value is None:
            text = ""
        elif hasattr(value, "value"):
            text = str(value.value)
        else:
            text = str(value)
        flat += [key, text]
    return flat
