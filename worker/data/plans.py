"""Plans (dry runs): what a batch request asked, the verdict the worker reaches for each item, and the summary.

A plan is stored like a small batch that never runs: its hash (``P:plan:<id>``: ``state``, the ``stage`` the worker
is at, a ``marker`` within it, counters, the selection and, once done, the ``summary`` as JSON), the items asked
(``:items``, JSON), the verdicts (``:verdicts``, a hash by position, so writing one twice changes nothing) and, for a
selector, the images already judged (``:seen``). Every key expires ``ttl`` seconds after the plan was made.

The worker moves a plan from stage to stage with a compare-and-set on (stage, marker) under WATCH, so a stage run
twice (a redelivered message) moves it once; ``P:planning`` holds plans still being worked out, by the time of
their last progress, for the reconciler to resend a lost step.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.client import Pipeline

from worker.data.idempotency import Claim, Earlier, IdempotencyKeys
from worker.data.keyspace import Keyspace
from worker.data.records import NewItem
from worker.domain.ownership import Owner
from worker.domain.retirement import Copy

PLAN = "plan"  # what an Idempotency-Key created (worker.data.idempotency)
PLANNING, DONE, FAILED = "planning", "done", "failed"
# A plan's stages: the asked items judged from listing pages, those the pages did not show looked up one by one,
# a selector's pages, then the quota and the forecast.
ITEMS, LOOKUP, PAGE, FINAL = "items", "lookup", "page", "final"
_PAGE = 1000


@dataclass(frozen=True)
class PlanRecord:
    plan_id: str
    created_at: float
    state: str  # planning, done or failed
    stage: str  # where the worker is: items, lookup, page, final
    marker: str  # within the stage: a lookup offset, or the image ID the next listing page starts after
    asked: int  # items given in the request
    judged: int  # verdicts so far
    selection: dict[str, Any] | None
    listed: int
    matched: int
    missing: list[int]  # positions of asked items the listing did not show (looked up one by one)
    message: str | None
    summary: dict[str, Any] | None
    label: str | None
    owner: Owner | None = None
    retirements: list[dict[str, Any]] | None = None  # a policy's plan: its rule's verdicts on the policy's copies
    ranking: list[Copy] = field(default_factory=list)  # a policy's plan: the copies its retention judges by

    @classmethod
    def of(cls, plan_id: str, meta: dict[str, str]) -> PlanRecord:
        def loaded(name: str) -> Any:
            return json.loads(meta[name]) if meta.get(name) else None

        return cls(
            plan_id=plan_id,
            created_at=float(meta["created_at"]),
            state=meta["state"],
            stage=meta.get("stage", ""),
            marker=meta.get("marker", ""),
            asked=int(meta.get("asked", 0)),
            judged=int(meta.get("judged", 0)),
            selection=loaded("selection"),
            listed=int(meta.get("listed", 0)),
            matched=int(meta.get("matched", 0)),
            missing=loaded("missing") or [],
            message=meta.get("message") or None,
            summary=loaded("summary"),
            label=meta.get("label") or None,
            owner=Owner.from_meta(meta),
            retirements=loaded("retirements"),
            ranking=[Copy.of_rank(r) for r in loaded("ranking") or []],
        )


@dataclass(frozen=True)
class StoredPlan:
    plan_id: str
    asked: int
    selecting: bool
    earlier: Earlier | None = None  # an Idempotency-Key had already made a plan (or a batch): nothing stored


class Plans:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys

    # Making ------------------------------------------------------------------------------------------------------
    def create(
        self,
        items: Sequence[NewItem],
        *,
        ttl: int,
        first_stage: str,
        selection: dict[str, Any] | None = None,
        label: str | None = None,
        claim: Claim | None = None,
        now: float | None = None,
        owner: Owner | None = None,
    ) -> StoredPlan:
        """Store a plan request in one transaction (with its Idempotency-Key's record, when it has one)."""
        now = time.time() if now is None else now
        plan_id = uuid.uuid4().hex
        k = self._keys

        def write(pipe: Pipeline) -> None:
            meta: dict[str, Any] = {
                "id": plan_id,
                "created_at": now,
                "state": PLANNING,
                "stage": first_stage,
                "marker": "",
                "asked": len(items),
                "judged": len(items),  # the asked items' verdicts take positions 0..asked-1
            }
            if selection is not None:
                meta["selection"] = json.dumps(selection, separators=(",", ":"))
            if label:
                meta["label"] = label
            if owner:
                meta.update(owner.to_meta())
            pipe.hset(k.plan(plan_id), mapping=meta)
            pipe.delete(k.plan_items(plan_id))
            rows = [json.dumps({**new.spec.model_dump(mode="json"), "account": new.account}) for new in items]
            for start in range(0, len(rows), _PAGE):
                pipe.rpush(k.plan_items(plan_id), *rows[start : start + _PAGE])
            if selection is not None and items:
                pipe.sadd(k.plan_seen(plan_id), *{new.spec.image_id for new in items})
            for name in self._names(plan_id):
                pipe.expire(name, ttl)
            pipe.zadd(k.planning(), {plan_id: now})

        if claim is None:
            pipe = self._redis.pipeline(transaction=True)
            write(pipe)
            pipe.execute()
        else:
            created = Earlier(claim.fingerprint, PLAN, plan_id)
            earlier = IdempotencyKeys(self._redis, k).write_once(claim, created, write)
            if earlier is not None and earlier != created:
                return StoredPlan(earlier.id, 0, False, earlier=earlier)
        return StoredPlan(plan_id, len(items), selection is not None)

    def _names(self, plan_id: str) -> list[str]:
        k = self._keys
        return [k.plan(plan_id), k.plan_items(plan_id), k.plan_verdicts(plan_id), k.plan_seen(plan_id)]

    # Reading ------------------------------------------------------------------------------------------------------
    def load(self, plan_id: str) -> PlanRecord | None:
        meta = self._redis.hgetall(self._keys.plan(plan_id))
        return PlanRecord.of(plan_id, meta) if meta else None

    def asked(self, plan_id: str) -> list[dict[str, Any]]:
        """The items the request gave (each an ItemSpec's fields plus ``account``), in order."""
        return [json.loads(row) for row in self._redis.lrange(self._keys.plan_items(plan_id), 0, -1)]

    def verdicts(self, plan_id: str, start: int = 0, count: int | None = None) -> list[dict[str, Any]]:
        """Verdicts by position from ``start`` (``count`` of them, or to the end)."""
        record = self.load(plan_id)
        if record is None:
            return []
        stop = record.judged if count is None else min(record.judged, start + count)
        found: list[dict[str, Any]] = []
        for first in range(start, stop, _PAGE):
            fields = [str(i) for i in range(first, min(stop, first + _PAGE))]
            found += [json.loads(v) for v in self._redis.hmget(self._keys.plan_verdicts(plan_id), fields) if v]
        return found

    def all_verdicts(self, plan_id: str) -> Iterator[dict[str, Any]]:
        record = self.load(plan_id)
        for start in range(0, record.judged if record else 0, _PAGE):
            yield from self.verdicts(plan_id, start, _PAGE)

    # The worker's progress ------------------------------------------------------------------------------------
    def put_verdicts(self, plan_id: str, verdicts: Mapping[int, dict[str, Any]], ttl: int) -> None:
        """Store verdicts at their positions (writing one again changes nothing)."""
        if not verdicts:
            return
        name = self._keys.plan_verdicts(plan_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(name, mapping={str(i): json.dumps(v, separators=(",", ":")) for i, v in verdicts.items()})
        pipe.expire(name, ttl)
        pipe.execute()

    def advance(self, plan_id: str, at: tuple[str, str], to: tuple[str, str], now: float, **fields: Any) -> bool:
        """Move the plan from stage/marker ``at`` to ``to`` (setting ``fields``); False if it was not at ``at``."""
        return self._at(plan_id, at, lambda pipe: self._move(pipe, plan_id, to, now, fields))

    def add_page(
        self,
        plan_id: str,
        marker: str,
        verdicts: Sequence[dict[str, Any]],
        *,
        to: tuple[str, str],
        listed: int,
        matched: int,
        ttl: int,
        now: float,
        message: str | None = None,
    ) -> bool:
        """A listing page's verdicts (one per image, skipping images already judged) at the next positions, and
        the plan moved on to ``to``; False if the page was already stored."""
        k = self._keys
        fresh: list[dict[str, Any]] = []

        def write(pipe: Pipeline) -> None:
            fresh.clear()  # a retried transaction starts again
            judged = int(pipe.hget(k.plan(plan_id), "judged") or 0)
            images = [v["image_id"] for v in verdicts]
            seen = pipe.smismember(k.plan_seen(plan_id), images) if images else []
            fresh.extend(v for v, known in zip(verdicts, seen, strict=True) if not known)
            pipe.multi()
            if fresh:
                positioned = {str(judged + i): {**v, "index": judged + i} for i, v in enumerate(fresh)}
                mapping = {i: json.dumps(v, separators=(",", ":")) for i, v in positioned.items()}
                pipe.hset(k.plan_verdicts(plan_id), mapping=mapping)
                pipe.sadd(k.plan_seen(plan_id), *(v["image_id"] for v in fresh))
                for name in (k.plan_verdicts(plan_id), k.plan_seen(plan_id)):
                    pipe.expire(name, ttl)
            counters = {"judged": judged + len(fresh), "message": message or ""}
            self._move(pipe, plan_id, to, now, counters)
            pipe.hincrby(k.plan(plan_id), "listed", listed)
            pipe.hincrby(k.plan(plan_id), "matched", matched)

        return self._at(plan_id, (PAGE, marker), write, watch=[k.plan_seen(plan_id)], started=True)

    def leave_out(self, plan_id: str, image_ids: Collection[str], *, ttl: int, ranking: Sequence[Copy] = ()) -> None:
        """Images a selector plan is not to judge (a policy's copies and their sources), as if judged already, and
        the copies its retention judges the pages' sources by (as a run keeps them: ``Selections.leave_out``)."""
        pipe = self._redis.pipeline(transaction=True)
        if image_ids:
            pipe.sadd(self._keys.plan_seen(plan_id), *image_ids)
            pipe.expire(self._keys.plan_seen(plan_id), ttl)
        pipe.hset(self._keys.plan(plan_id), "ranking", json.dumps([c.ranked() for c in ranking], separators=(",", ":")))
        pipe.execute()

    def note_retirements(self, plan_id: str, judged: list[dict[str, Any]]) -> None:
        """A policy's plan: what the next run's retention would say of the policy's copies (the summary shows it)."""
        self._redis.hset(self._keys.plan(plan_id), "retirements", json.dumps(judged, separators=(",", ":")))

    def finish(self, plan_id: str, summary: dict[str, Any], now: float) -> bool:
        fields = {"state": DONE, "summary": json.dumps(summary, separators=(",", ":"))}
        return self.advance(plan_id, (FINAL, ""), ("", ""), now, **fields)

    def fail(self, plan_id: str, message: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._keys.plan(plan_id), mapping={"state": FAILED, "message": message})
        pipe.zrem(self._keys.planning(), plan_id)
        pipe.execute()

    def count_error(self, plan_id: str) -> int:
        return int(self._redis.hincrby(self._keys.plan(plan_id), "errors", 1))

    def touch(self, plan_id: str, now: float) -> None:
        self._redis.zadd(self._keys.planning(), {plan_id: now}, xx=True)

    def stalled(self, before: float, *, limit: int) -> list[tuple[str, str, str]]:
        """(plan ID, stage, marker) of plans that have made no progress since ``before``."""
        ids = self._redis.zrangebyscore(self._keys.planning(), "-inf", before, start=0, num=limit)
        pipe = self._redis.pipeline(transaction=False)
        for plan_id in ids:
            pipe.hmget(self._keys.plan(plan_id), ["stage", "marker"])
        found = []
        for plan_id, (stage, marker) in zip(ids, pipe.execute(), strict=True):
            if stage is None:  # expired meanwhile
                self._redis.zrem(self._keys.planning(), plan_id)
                continue
            found.append((plan_id, stage, marker or ""))
        return found

    # Helpers ---------------------------------------------------------------------------------------------------
    def _move(self, pipe: Pipeline, plan_id: str, to: tuple[str, str], now: float, fields: Mapping[str, Any]) -> None:
        stage, marker = to
        pipe.hset(self._keys.plan(plan_id), mapping={"stage": stage, "marker": marker, "errors": 0, **fields})
        if fields.get("state") in (DONE, FAILED):
            pipe.zrem(self._keys.planning(), plan_id)
        else:
            pipe.zadd(self._keys.planning(), {plan_id: now})

    def _at(
        self,
        plan_id: str,
        at: tuple[str, str],
        write: Any,
        *,
        watch: Sequence[str] = (),
        started: bool = False,
    ) -> bool:
        """Run ``write`` in a transaction if the plan is planning at stage/marker ``at``, watched meanwhile.
        ``started``: ``write`` reads first and opens the transaction itself."""
        name = self._keys.plan(plan_id)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(name, *watch)
                    state, stage, marker = pipe.hmget(name, ["state", "stage", "marker"])
                    if state != PLANNING or (stage, marker or "") != at:
                        return False
                    if not started:
                        pipe.multi()
                    write(pipe)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue
