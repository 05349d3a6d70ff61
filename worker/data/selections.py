"""A batch's selection: the selector and template it was submitted with, and how far the worker has paged through
IMS's listing (``sel_*`` fields of the batch's hash).

Pages are added by one script each (``lua/add_selected.lua``) that applies only at the marker the batch expects,
so a page handled twice adds nothing twice; items of selected images get IDs derived from the batch and the image,
so the same image always maps to the same item and an image seen twice is one item. ``P:expanding`` holds the
batches still paging, by the time of their last progress, for the reconciler to resend a lost page.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.client import Pipeline

from worker.data.keyspace import Keyspace
from worker.data.scripts import register
from worker.domain.item import ReplicationItem
from worker.domain.retirement import Copy
from worker.domain.states import ItemState

EXPANDING, DONE, FAILED, CANCELLED = "expanding", "done", "failed", "cancelled"
_NAMESPACE = uuid.UUID("5b8e4c1e-2f4a-4d7b-9c61-0a7f3e2d1c90")  # item IDs of selected images (uuid5)


@dataclass(frozen=True)
class SelectionProgress:
    state: str  # expanding, done, failed or cancelled
    listed: int  # images IMS listed so far
    matched: int  # images that passed every filter
    created: int  # items made from them (an image already in the batch makes none)
    message: str | None = None  # why it failed, or that it stopped at the batch's item limit
    marker: str = ""  # where the next page starts ("" before the first)
    copied: int = 0  # a policy's run: selected sources left out, as the policy's copies of them exist
    copies_read: bool = False  # a policy's run: its copies have been listed (once, before the first page)
    ranking: list[Copy] = field(default_factory=list)  # a policy's run: the copies its retention judges by

    @classmethod
    def of(cls, meta: dict[str, str]) -> SelectionProgress | None:
        if "sel_state" not in meta:
            return None
        return cls(
            state=meta["sel_state"],
            listed=int(meta.get("sel_listed", 0)),
            matched=int(meta.get("sel_matched", 0)),
            created=int(meta.get("sel_created", 0)),
            message=meta.get("sel_message") or None,
            marker=meta.get("sel_marker", ""),
            copied=int(meta.get("sel_copied", 0)),
            copies_read="sel_copied" in meta,
            ranking=[Copy.of_rank(r) for r in json.loads(meta.get("sel_ranking") or "[]")],
        )


@dataclass(frozen=True)
class Selection:
    """What a batch selects (as JSON objects: ``selector``, ``template``, ``account``, ``region``, ``day``) and
    how far it has got."""

    batch_id: str
    spec: dict[str, Any]
    progress: SelectionProgress
    total: int  # items the batch holds now


def selected_item_id(batch_id: str, image_id: str) -> str:
    return uuid.uuid5(_NAMESPACE, f"{batch_id}:{image_id}").hex


def start(pipe: Pipeline, keys: Keyspace, batch_id: str, spec: dict[str, Any], image_ids: Sequence[str], now: float):
    """Inside the batch's creation: record the selection and the images its own items already cover."""
    fields = {"selection": json.dumps(spec, separators=(",", ":")), "sel_state": EXPANDING, "sel_marker": ""}
    pipe.hset(keys.batch(batch_id), mapping={**fields, "sel_listed": 0, "sel_matched": 0, "sel_created": 0})
    pipe.delete(keys.selection_seen(batch_id))
    if image_ids:
        pipe.sadd(keys.selection_seen(batch_id), *set(image_ids))
    pipe.zadd(keys.expanding(), {batch_id: now})


class Selections:
    def __init__(self, client: redis.Redis, keys: Keyspace) -> None:
        self._redis = client
        self._keys = keys
        self._add = register(client, "add_selected")
        self._stop = register(client, "stop_selection")

    def load(self, batch_id: str) -> Selection | None:
        meta = self._redis.hgetall(self._keys.batch(batch_id))
        progress = SelectionProgress.of(meta)
        if progress is None:
            return None
        return Selection(batch_id, json.loads(meta["selection"]), progress, int(meta.get("total", 0)))

    def add_page(
        self,
        batch_id: str,
        marker: str,
        items: Sequence[ReplicationItem],
        *,
        next_marker: str,
        listed: int,
        matched: int,
        last: bool,
        message: str | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """Add a page's items (accepted, IDs from ``selected_item_id``); returns ``('ok'|'stale'|'stopped',
        items created)``. ``last`` ends the selection (``message`` says why, when not for lack of pages)."""
        now = time.time() if now is None else now
        k = self._keys
        keys = [
            k.batch(batch_id),
            k.batch_items(batch_id),
            k.batch_counts(batch_id),
            k.selection_seen(batch_id),
            k.state(ItemState.ACCEPTED.value),
            k.expanding(),
        ]
        entry = json.dumps({"state": ItemState.ACCEPTED.value, "at": now})
        args: list[Any] = [batch_id, marker, next_marker, listed, matched, "1" if last else "0", now, entry]
        args += [message or "", len(items)]
        for item in items:
            keys += [k.item(item.id), k.item_log(item.id)]
            fields = [v for pair in item.to_redis().items() if pair[1] != "" for v in pair]
            args += [item.id, item.image_id, len(fields) // 2, *fields]
        status, created = self._add(keys=keys, args=args)
        return status, int(created)

    def stop(self, batch_id: str, state: str, message: str, now: float | None = None) -> bool:
        """End a selection still expanding (``cancelled`` or ``failed``); False if it had already ended."""
        now = time.time() if now is None else now
        k = self._keys
        keys = [k.batch(batch_id), k.selection_seen(batch_id), k.expanding(), k.batch_counts(batch_id)]
        return bool(self._stop(keys=keys, args=[batch_id, state, message, now]))

    def leave_out(
        self, batch_id: str, image_ids: Collection[str], *, copied: int, ranking: Sequence[Copy] = ()
    ) -> None:
        """A policy's run: images its selection must not make items of (the policy's copies and their sources),
        read once before its first page (``copied`` of its sources), and the copies its retention judges the
        pages' sources by (``worker.domain.retirement.ranking``)."""
        pipe = self._redis.pipeline(transaction=True)
        if image_ids:
            pipe.sadd(self._keys.selection_seen(batch_id), *image_ids)
        ranked = json.dumps([c.ranked() for c in ranking], separators=(",", ":"))
        pipe.hset(self._keys.batch(batch_id), mapping={"sel_copied": copied, "sel_ranking": ranked})
        pipe.execute()

    def count_error(self, batch_id: str) -> int:
        """One more failed attempt at the next page; returns how many in a row."""
        return int(self._redis.hincrby(self._keys.batch(batch_id), "sel_errors", 1))

    def stalled(self, before: float, *, limit: int) -> list[tuple[str, str]]:
        """(batch ID, marker) of selections that have made no progress since ``before``."""
        ids = self._redis.zrangebyscore(self._keys.expanding(), "-inf", before, start=0, num=limit)
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in ids:
            pipe.hget(self._keys.batch(batch_id), "sel_marker")
        return [(batch_id, marker or "") for batch_id, marker in zip(ids, pipe.execute(), strict=True)]

    def touch(self, batch_id: str, now: float) -> None:
        """The selection is being worked on (a page is retried later): not stalled yet."""
        self._redis.zadd(self._keys.expanding(), {batch_id: now}, xx=True)
