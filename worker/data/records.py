"""Batches and items in Redis: stored in one transaction, moved by the one transition table, read in pages.

No secret is ever stored here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from worker.data import selections
from worker.data.connection import Durability, NotReplicated
from worker.data.idempotency import Claim, Earlier, IdempotencyKeys, digest
from worker.data.keyspace import Keyspace
from worker.data.scripts import register
from worker.data.selections import EXPANDING, SelectionProgress
from worker.domain.item import ReplicationItem, Transition, redis_value
from worker.domain.ownership import Owner
from worker.domain.priority import Priority
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import MOVES, Event, ItemState

_PAGE = 1000  # item IDs per Redis command when a long list is written or walked
# An account's first items admitted before any account's others: IMS runs 5 copies at a time per project by default
# (docs/ims-api.md, IMG.0060), so every project's first copies start within the first admit chunks.
FIRST_ROUND = 5
BATCH = "batch"  # what an Idempotency-Key created (worker.data.idempotency)
RUNNING, FINISHED = "running", "finished"  # a batch's states


@dataclass(frozen=True)
class NewItem:
    """An item ready to store: its spec with defaults applied and its account resolved."""

    spec: ItemSpec
    account: str

    @property
    def accounts(self) -> list[str]:
        """Every account it acts in: its own and its receivers' (each accepts and copies as itself)."""
        return [self.account, *(r.account for r in self.spec.distribute or ())]


def admission_order(ids: Sequence[str], accounts: Sequence[str]) -> list[str] | None:
    """The order an admit chain takes a batch of several accounts in (None for one account: as submitted): each
    account's first ``FIRST_ROUND`` items, then the rest account by account; accounts as they first appear, items
    as given. An admit chunk then holds many items of few accounts, validated by one listing each, and still
    starts every account's first copies early."""
    by_account: dict[str, list[str]] = {}
    for item_id, account in zip(ids, accounts, strict=True):
        by_account.setdefault(account, []).append(item_id)
    if len(by_account) < 2:
        return None
    lists = by_account.values()
    return [i for group in lists for i in group[:FIRST_ROUND]] + [i for group in lists for i in group[FIRST_ROUND:]]


@dataclass(frozen=True)
class StoredBatch:
    batch_id: str
    item_ids: list[str]
    # Set when an Idempotency-Key had already created something: nothing new was stored.
    earlier: Earlier | None = None
    selecting: bool = False  # a selector adds items to it as the worker lists them


@dataclass(frozen=True)
class TransitionResult:
    ok: bool
    previous: ItemState | None  # None when the item does not exist
    # An item a distribution made that ended (or was retried): how many of its parent's children have not ended.
    open_siblings: int | None = None


@dataclass(frozen=True)
class BatchSummary:
    batch_id: str
    created_at: float
    total: int
    counts: dict[ItemState, int]
    label: str | None = None
    finished_at: float | None = None  # when it ended: its last item did, with no selector adding more (lua/lib/)
    selection: SelectionProgress | None = None  # a batch that selects images by filter
    priority: Priority = Priority.NORMAL
    owner: Owner | None = None
    # Its distributions' receivers' private copies: receiver items succeeded (among the succeeded; lua/move.lua).
    received: int = 0

    @property
    def done(self) -> bool:
        """Every item is terminal, and no selector is still adding items."""
        if self.selection is not None and self.selection.state == EXPANDING:
            return False
        return sum(n for s, n in self.counts.items() if s.terminal) >= self.total

    @property
    def state(self) -> str:
        """``finished`` once every item is terminal, else ``running``."""
        return FINISHED if self.done else RUNNING

    @classmethod
    def of(cls, batch_id: str, meta: dict[str, str], counts: dict[str, str]) -> BatchSummary:
        return cls(
            batch_id=batch_id,
            created_at=float(meta["created_at"]),
            total=int(meta["total"]),
            counts={s: int(counts.get(s.value, 0)) for s in ItemState},
            label=meta.get("label") or None,
            finished_at=float(meta["finished_at"]) if meta.get("finished_at") else None,
            selection=SelectionProgress.of(meta),
            priority=Priority(meta.get("priority") or Priority.NORMAL.value),
            owner=Owner.from_meta(meta),
            received=int(counts.get("received") or 0),
        )

    @property
    def copies_made(self) -> int:
        """The copies its items made in their accounts: the items succeeded, receivers' copies left out."""
        return self.counts.get(ItemState.SUCCEEDED, 0) - self.received


class RecordStore:
    def __init__(self, client: redis.Redis, keys: Keyspace, durability: Durability | None = None) -> None:
        self._redis = client
        self._keys = keys
        self._durability = durability or Durability()
        self._move = register(client, "move")
        self._update_if = register(client, "update_if")
        self._claim_poll = register(client, "claim_poll")
        self._spend_retry = register(client, "spend_retry")
        self._add_children = register(client, "add_children")

    # Writing ----------------------------------------------------------------------------------------------------
    def create_batch(
        self,
        items: Sequence[NewItem],
        now: float | None = None,
        *,
        label: str | None = None,
        selection: dict[str, Any] | None = None,
        claim: Claim | None = None,
        priority: Priority = Priority.NORMAL,
        owner: Owner | None = None,
    ) -> StoredBatch:
        """Store a batch and all its items in one MULTI/EXEC round trip: all of it or none of it.

        Every command in it sets a value rather than adding to one (lists are deleted before they are filled), so
        a transaction sent again after a lost reply leaves the same records, not doubled ones. With ``claim`` (an
        ``Idempotency-Key``) the key's record is written in the same transaction, unless the key was taken: then
        nothing is stored and the answer names what the first request created (``earlier``). With ``selection``
        the batch also selects images by filter (``worker.data.selections``); the worker adds them page by page.

        The transaction is confirmed by ``IMSREP_REDIS_MIN_REPLICAS`` replicas before this returns; if they do not
        confirm it in time, the batch is taken back (``withdraw``) and ``NotReplicated`` raised.
        """
        now = time.time() if now is None else now
        k = self._keys
        batch_id = uuid.uuid4().hex
        ids = [uuid.uuid4().hex for _ in items]
        entry = json.dumps({"state": ItemState.ACCEPTED.value, "at": now})

        def write(pipe: Pipeline) -> None:
            meta = {
                "id": batch_id,
                "created_at": now,
                "total": len(items),
                "submitted": len(items),
                "priority": priority.value,
                "admit_cursor": 0,
                **({"label": label} if label else {}),
                **(owner.to_meta() if owner else {}),
            }
            pipe.hset(k.batch(batch_id), mapping=meta)
            pipe.zadd(k.admitting(), {batch_id: now})
            pipe.hset(k.batch_counts(batch_id), ItemState.ACCEPTED.value, len(items))
            pipe.zadd(k.batches(), {batch_id: now})
            if owner:  # counted against its principal's unfinished items (worker.data.limits)
                pipe.zadd(k.running(owner.principal), {batch_id: now})
            if label:
                pipe.zadd(k.label(label), {batch_id: now})
            pipe.delete(k.batch_items(batch_id), k.batch_admission(batch_id))
            for start in range(0, len(ids), _PAGE):
                pipe.rpush(k.batch_items(batch_id), *ids[start : start + _PAGE])
            if selection is None and (grouped := admission_order(ids, [new.account for new in items])):
                for start in range(0, len(grouped), _PAGE):
                    pipe.rpush(k.batch_admission(batch_id), *grouped[start : start + _PAGE])
            for position, (item_id, new) in enumerate(zip(ids, items, strict=True)):
                record = ReplicationItem(
                    id=item_id,
                    batch_id=batch_id,
                    account=new.account,
                    position=position,
                    state=ItemState.ACCEPTED,
                    created_at=now,
                    updated_at=now,
                    **new.spec.model_dump(exclude={"account"}),
                )
                pipe.hset(k.item(item_id), mapping=_compact(record.to_redis()))
                pipe.delete(k.item_log(item_id))
                pipe.rpush(k.item_log(item_id), entry)
            if ids:
                pipe.zadd(k.state(ItemState.ACCEPTED.value), dict.fromkeys(ids, now))
            if selection is not None:
                selections.start(pipe, k, batch_id, selection, [new.spec.image_id for new in items], now)

        try:
            if claim is None:
                pipe = self._durability.pipeline(self._redis)
                with pipe:
                    write(pipe)
                    pipe.execute()
                self._durability.require_replicas(pipe)
                return StoredBatch(batch_id, ids, selecting=selection is not None)
            created = Earlier(claim.fingerprint, BATCH, batch_id)
            idempotency = IdempotencyKeys(self._redis, k, self._durability)
            earlier = idempotency.write_once(claim, created, write)
            if earlier is not None and earlier != created:
                return StoredBatch(earlier.id, [], earlier=earlier)
            if earlier == created:  # our own transaction landed but its reply was lost: confirm it now
                idempotency.confirm()
            return StoredBatch(batch_id, ids, selecting=selection is not None)
        except NotReplicated:
            # Not accepted: taken back from the master, so that a 503 leaves nothing behind to run.
            self.withdraw(StoredBatch(batch_id, ids), claim)
            raise

    def add_children(self, batch_id: str, items: Sequence[ReplicationItem], now: float | None = None) -> int:
        """Add a distribution's receiver items (accepted, children of one parent) to ``batch_id``, those that do not
        exist yet, with the batch's counts and total and the parent's count of children not ended
        (``lua/add_children.lua``); returns how many were created."""
        if not items:
            return 0
        now = time.time() if now is None else now
        k = self._keys
        assert len({item.parent_id for item in items}) == 1 and items[0].parent_id, "the children of one parent"
        keys = [k.batch(batch_id), k.batch_items(batch_id), k.batch_counts(batch_id), k.state(ItemState.ACCEPTED.value)]
        keys.append(k.item(str(items[0].parent_id)))
        args: list[Any] = [now, json.dumps({"state": ItemState.ACCEPTED.value, "at": now}), len(items)]
        for item in items:
            keys += [k.item(item.id), k.item_log(item.id)]
            fields = [v for pair in _compact(item.to_redis()).items() for v in pair]
            args += [item.id, len(fields) // 2, *fields]
        return int(self._add_children(keys=keys, args=args))

    def withdraw(self, stored: StoredBatch, claim: Claim | None = None) -> bool:
        """Take back a batch just stored whose acceptance failed afterwards (its admit message could not be stored,
        or the replicas did not confirm it): its records, its place in the indexes and the Idempotency-Key that
        named it, so that nothing of it runs and a retry with the same key stores it afresh. Only while every item
        is still ``accepted`` (no worker has touched it); False otherwise, or when it is gone already.

        Deletions are allowed even when Redis is at its memory limit, so this works exactly when the admit message
        could not be written for lack of memory."""
        k = self._keys
        batch_id = stored.batch_id
        item_keys = [k.item(i) for i in stored.item_ids]
        while True:
            with self._redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(k.batch_counts(batch_id), *item_keys)
                    counts = pipe.hgetall(k.batch_counts(batch_id))
                    accepted = {ItemState.ACCEPTED.value: str(len(stored.item_ids))} if stored.item_ids else {}
                    if not pipe.exists(k.batch(batch_id)) or counts != accepted:
                        return False
                    label, principal = pipe.hmget(k.batch(batch_id), "label", "principal")
                    pipe.multi()
                    pipe.delete(k.batch(batch_id), k.batch_items(batch_id), k.batch_counts(batch_id))
                    pipe.delete(k.selection_seen(batch_id), k.batch_admission(batch_id))
                    pipe.zrem(k.batches(), batch_id)
                    pipe.zrem(k.expanding(), batch_id)
                    pipe.zrem(k.admitting(), batch_id)
                    if label:
                        pipe.zrem(k.label(label), batch_id)
                    if principal:
                        pipe.zrem(k.running(principal), batch_id)
                    for start in range(0, len(stored.item_ids), _PAGE):
                        page = stored.item_ids[start : start + _PAGE]
                        pipe.delete(*(k.item(i) for i in page), *(k.item_log(i) for i in page))
                        pipe.zrem(k.state(ItemState.ACCEPTED.value), *page)
                    if claim is not None:
                        pipe.delete(k.idempotency(digest(claim.key)))
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def submitted_item_ids(self, batch_id: str) -> list[str] | None:
        """The IDs of the items the batch was submitted with (not those a selector added); None if it is gone."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(self._keys.batch(batch_id), "submitted")
        pipe.hget(self._keys.batch(batch_id), "total")
        submitted, total = pipe.execute()
        if total is None:
            return None
        count = int(submitted if submitted is not None else total)
        return self.batch_item_ids(batch_id, 0, count - 1) if count else []

    def move(
        self,
        item: ReplicationItem,
        event: Event,
        *,
        reason: ReasonCode | None = None,
        message: str | None = None,
        now: float | None = None,
        pipe: redis.client.Pipeline | None = None,
        **fields: object,
    ) -> TransitionResult:
        """Apply ``event`` to the item if its current state allows it (``MOVES``); set ``fields`` in the same step.

        ``reason`` and ``message`` are stored on the item (cleared when not given) and in its history. With
        ``pipe`` the move joins the caller's transaction and its answer comes from ``execute`` (``result_of``).
        """
        now = time.time() if now is None else now
        move = MOVES[event]
        sources = sorted(s.value for s in move.sources)
        entry: dict[str, object] = {"state": move.target.value, "at": now}
        if reason is not None:
            entry["reason"] = reason.value
        if message is not None:
            entry["message"] = message
        k = self._keys
        keys = [
            k.item(item.id),
            k.item_log(item.id),
            k.batch_counts(item.batch_id),
            k.due(),
            k.state(move.target.value),
            k.batch(item.batch_id),
            *(k.state(s) for s in sources),
            *([k.item(item.parent_id)] if item.parent_id else []),
        ]
        # Terminal, or waiting for a slot: no step of its own is due until something else happens to it.
        idle = "1" if move.target.terminal or move.target is ItemState.WAITING else "0"
        flat = _flatten({**fields, "reason": reason, "message": message})
        args = [item.id, move.target.value, now, json.dumps(entry), idle, len(sources), *sources, *flat]
        answer = self._move(keys=keys, args=args, client=pipe or self._redis)
        return self.result_of(answer) if pipe is None else TransitionResult(False, None)

    def move_all(self, items: Sequence[ReplicationItem], event: Event, now: float, **fields: object) -> list[bool]:
        """``move`` for many items in one round trip (each moved on its own, as ``move`` would); whether each moved."""
        pipe = self._redis.pipeline(transaction=False)
        for item in items:
            self.move(item, event, now=now, pipe=pipe, **fields)
        return [self.result_of(answer).ok for answer in pipe.execute()]

    @staticmethod
    def result_of(answer: list[Any]) -> TransitionResult:
        status, previous, *open_siblings = answer
        siblings = int(open_siblings[0]) if open_siblings and open_siblings[0] != "" else None
        return TransitionResult(status == "ok", ItemState(previous) if previous else None, siblings)

    # Due times: when each item's next step should run, so the reconciler can tell a lost step from a slow one.
    def set_due(self, dues: Mapping[str, float]) -> None:
        """The next step of each item is due at that time (a message was just sent for it)."""
        if dues:
            self._redis.zadd(self._keys.due(), dict(dues))

    def mark_running(self, *item_ids: str, until: float) -> None:
        """A step of each item is running and will be done by ``until`` (items with no step due are left out)."""
        if item_ids:
            self._redis.zadd(self._keys.due(), dict.fromkeys(item_ids, until), xx=True)

    def overdue(self, before: float, *, limit: int) -> list[tuple[ReplicationItem | None, str]]:
        """Items whose next step was due before ``before``, most overdue first: (item or None if gone, ID)."""
        ids = self._redis.zrangebyscore(self._keys.due(), "-inf", before, start=0, num=limit)
        found = {item.id: item for item in self.get_items(ids)}
        return [(found.get(item_id), item_id) for item_id in ids]

    def forget_due(self, item_ids: Sequence[str]) -> None:
        if item_ids:
            self._redis.zrem(self._keys.due(), *item_ids)

    # Admit chains: a batch's accepted items enter the pipeline a chunk at a time.
    def admit_progress(self, batch_id: str, cursor: int, due: float) -> None:
        """The batch's admit chain will take the chunk at ``cursor`` by ``due``."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._keys.batch(batch_id), "admit_cursor", cursor)
        pipe.zadd(self._keys.admitting(), {batch_id: due})
        pipe.execute()

    def admit_done(self, batch_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(self._keys.admitting(), batch_id)
        pipe.delete(self._keys.batch_admission(batch_id))
        pipe.execute()

    def admission_ids(self, batch_id: str, start: int, stop: int) -> list[str]:
        """A range of the batch's item IDs in the order its admit chain takes them: grouped by account while a
        batch of several accounts is admitted (an admit chunk of a batch that interleaves 200 accounts held 2 or 3
        items of each, and walked each account's listing for them, 4 times over for 10 items), else as submitted.
        The grouped list goes when the chain ends (``admit_done``); an admit sent after that (a retry of failed
        items) walks the submitted order."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(self._keys.batch_admission(batch_id), start, stop)
        pipe.lrange(self._keys.batch_items(batch_id), start, stop)
        grouped, submitted = pipe.execute()
        return grouped or submitted

    def overdue_admits(self, before: float, *, limit: int) -> list[tuple[str, int]]:
        """(batch ID, cursor) of admit chains whose next chunk was due before ``before``."""
        ids = self._redis.zrangebyscore(self._keys.admitting(), "-inf", before, start=0, num=limit)
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in ids:
            pipe.hget(self._keys.batch(batch_id), "admit_cursor")
        return [(batch_id, int(cursor or 0)) for batch_id, cursor in zip(ids, pipe.execute(), strict=True)]

    def update_if(self, item_id: str, state: ItemState, **fields: object) -> bool:
        """Set fields while the item is still in ``state``; False if it has moved on."""
        return bool(self._update_if(keys=[self._keys.item(item_id)], args=[state.value, *_flatten(fields)]))

    def record_attempt(self, item_id: str, at: float) -> bool:
        """Record a copy attempt (``submit_started_at``) while the item is ``submitting``, confirmed by
        ``IMSREP_REDIS_MIN_REPLICAS`` replicas: made before the copy call, so that no failover can make the pipeline
        forget that it asked IMS for a copy (the next attempt looks for that copy before making another). False if
        the item has moved on; ``NotReplicated`` if the replicas did not confirm in time (then no copy call)."""
        if not self._durability.replicas:  # nothing to wait for: one call (a script in a pipeline costs two)
            return self.update_if(item_id, ItemState.SUBMITTING, submit_started_at=at)
        pipe = self._durability.pipeline(self._redis)
        with pipe:
            self._update_if(
                keys=[self._keys.item(item_id)],
                args=[ItemState.SUBMITTING.value, *_flatten({"submit_started_at": at})],
                client=pipe,
            )
            (recorded,) = pipe.execute()
        self._durability.require_replicas(pipe)
        return bool(recorded)

    def confirm(self) -> None:
        """Make sure every write made so far (an earlier attempt's record, say) is on the replicas
        (``NotReplicated`` if not in time)."""
        self._durability.confirm(self._redis, self._keys.fence())

    def spend_retry(self, item_id: str, budget: int) -> int | None:
        """Spend one of the item's ``budget`` retries after a transient cloud error: how many it has spent in this
        attempt, or None when none was left. Checked and spent atomically (``lua/spend_retry.lua``), so two
        deliveries of a step failing side by side cannot take the count past the budget."""
        spent = int(self._spend_retry(keys=[self._keys.item(item_id)], args=[budget]))
        return None if spent < 0 else spent

    def claim_poll(self, item_id: str, seq: int, now: float, state: ItemState = ItemState.REPLICATING) -> bool:
        """Advance the item's chain of polls (or of follow-ups, in ``finishing``) from ``seq``; False if another
        task did, or the item is not in ``state``."""
        args = [state.value, seq, now]
        return bool(self._claim_poll(keys=[self._keys.item(item_id)], args=args))

    # Reading ----------------------------------------------------------------------------------------------------
    def get_item(self, item_id: str) -> ReplicationItem | None:
        data = self._redis.hgetall(self._keys.item(item_id))
        return ReplicationItem.from_redis(data) if data else None

    def get_items(self, item_ids: Sequence[str]) -> list[ReplicationItem]:
        pipe = self._redis.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hgetall(self._keys.item(item_id))
        return [ReplicationItem.from_redis(d) for d in pipe.execute() if d]

    def history(self, item_id: str) -> list[Transition]:
        return self.histories([item_id])[0]

    def histories(self, item_ids: Sequence[str]) -> list[list[Transition]]:
        """Each item's history, oldest first, in one round trip (a page of a batch's items at once)."""
        pipe = self._redis.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.lrange(self._keys.item_log(item_id), 0, -1)
        return [[Transition(**json.loads(e)) for e in log] for log in pipe.execute()]

    def batch(self, batch_id: str) -> BatchSummary | None:
        return self.batches([batch_id])[0]

    def batches(self, batch_ids: Sequence[str]) -> list[BatchSummary | None]:
        """Summaries of the batches (None for one that does not exist), in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hgetall(self._keys.batch(batch_id))
            pipe.hgetall(self._keys.batch_counts(batch_id))
        answers = pipe.execute()
        return [
            BatchSummary.of(batch_id, meta, counts) if meta else None
            for batch_id, meta, counts in zip(batch_ids, answers[::2], answers[1::2], strict=True)
        ]

    def batch_item_ids(self, batch_id: str, start: int = 0, stop: int = -1) -> list[str]:
        return self._redis.lrange(self._keys.batch_items(batch_id), start, stop)

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
        return int(self._redis.llen(self._keys.batch_items(batch_id)))

    def counts_by_state(self) -> dict[ItemState, int]:
        pipe = self._redis.pipeline(transaction=False)
        for s in ItemState:
            pipe.zcard(self._keys.state(s.value))
        return dict(zip(ItemState, (int(n) for n in pipe.execute()), strict=True))

    def priority(self, batch_id: str) -> Priority:
        return Priority(self._redis.hget(self._keys.batch(batch_id), "priority") or Priority.NORMAL.value)

    def in_state(self, state: ItemState, *, limit: int) -> list[ReplicationItem]:
        """Items in ``state``, longest there first, at most ``limit``."""
        ids = self._redis.zrange(self._keys.state(state.value), 0, limit - 1)
        return [i for i in self.get_items(ids) if i.state is state]


def _compact(mapping: dict[str, str]) -> dict[str, str]:
    """Leave empty fields out of a new record: they read back as None and cost no memory."""
    return {k: v for k, v in mapping.items() if v != ""}


def _flatten(fields: dict[str, object]) -> list[str]:
    flat: list[str] = []
    for key, value in fields.items():
        flat += [key, redis_value(value)]
    return flat
