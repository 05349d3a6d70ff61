"""Batches over their life: listed newest first (by label, by state), deleted once finished, and expired after
the retention time by a sweep, so that Redis (``noeviction``) does not fill with old batches.

Deleting checks and deletes in one transaction watched on the batch's counts, which every move of one of its
items changes (``lua/move.lua``): a batch is deleted only if, at the instant of deletion, every item is terminal.
A retry that puts a failed item back to work makes the transaction fail, and the batch stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

import redis

from worker.data.keyspace import Keyspace
from worker.data.records import FINISHED, BatchSummary, RecordStore
from worker.domain.states import ItemState

_PAGE = 500  # batches per round trip when the index is walked
_ITEMS = 1000  # item IDs per round trip when a batch is read or deleted


class Deleted(str, Enum):
    DELETED = "deleted"
    MISSING = "missing"
    NOT_FINISHED = "not_finished"


@dataclass(frozen=True)
class BatchPage:
    batches: list[BatchSummary]
    next_cursor: str | None  # pass back for the next page; None on the last


class BatchLifecycle:
    def __init__(self, client: redis.Redis, keys: Keyspace, records: RecordStore) -> None:
        self._redis = client
        self._keys = keys
        self._records = records

    # Listing ----------------------------------------------------------------------------------------------------
    def page(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        label: str | None = None,
        state: str | None = None,
        visible: Callable[[BatchSummary], bool] | None = None,
    ) -> BatchPage:
        """Batches newest first, ``limit`` at most, after ``cursor`` (a previous page's ``next_cursor``); only those
        ``visible`` says the caller may see, when given."""
        index = self._keys.label(label) if label else self._keys.batches()
        found: list[BatchSummary] = []
        for ids in self._newest_first(index, _parse_cursor(cursor)):
            for summary in self._records.batches(ids):
                if len(found) == limit:  # one more exists: there is a next page (it may turn out empty)
                    return BatchPage(found, _cursor(found[-1]))
                if summary is None or (visible is not None and not visible(summary)):
                    continue
                if state is None or summary.state == state:
                    found.append(summary)
        return BatchPage(found, None)

    def _newest_first(self, index: str, after: tuple[float, str] | None) -> Iterator[list[str]]:
        """Pages of a batch index from the newest, strictly after ``after`` (score, then ID, both descending)."""
        top: float | str = "+inf" if after is None else after[0]
        while True:
            entries = self._redis.zrevrangebyscore(index, top, "-inf", start=0, num=_PAGE, withscores=True)
            if after is not None:
                entries = [(i, s) for i, s in entries if s < after[0] or (s == after[0] and i < after[1])]
            if entries:
                yield [batch_id for batch_id, _ in entries]
            if len(entries) < _PAGE:
                return
            after = (entries[-1][1], entries[-1][0])
            top = after[0]

    def all_ids(self) -> Iterator[str]:
        """Every batch ID, oldest first, a page at a time (batches may come and go meanwhile)."""
        start = 0
        while ids := self._redis.zrange(self._keys.batches(), start, start + _PAGE - 1):
            yield from ids
            start += len(ids)

    # Finishing --------------------------------------------------------------------------------------------------
    def note_finished(self, summary: BatchSummary) -> float | None:
        """When a finished batch ended (None while it runs): its ``finished_at``, which the scripts that move its
        items keep. A batch that ended before they kept it (stored by an earlier version) has none: the latest
        ``updated_at`` of its items is recorded instead."""
        if summary.state != FINISHED:
            return None
        if summary.finished_at is not None:
            return summary.finished_at
        ended = max((i.updated_at for i in self._items(summary.batch_id)), default=summary.created_at)
        self._redis.hset(self._keys.batch(summary.batch_id), "finished_at", ended)
        return ended

    def _items(self, batch_id: str) -> Iterator:
        for start in range(0, self._records.batch_size(batch_id), _ITEMS):
            yield from self._records.get_items(self._records.batch_item_ids(batch_id, start, start + _ITEMS - 1))

    # Deleting ---------------------------------------------------------------------------------------------------
    def delete(self, batch_id: str) -> Deleted:
        """Delete a finished batch with all its items, atomically; nothing when any item is not terminal."""
        k = self._keys
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(k.batch(batch_id), k.batch_counts(batch_id))
                    meta = pipe.hgetall(k.batch(batch_id))
                    if not meta:
                        return Deleted.MISSING
                    summary = BatchSummary.of(batch_id, meta, pipe.hgetall(k.batch_counts(batch_id)))
                    if summary.state != FINISHED:
                        return Deleted.NOT_FINISHED
                    item_ids = pipe.lrange(k.batch_items(batch_id), 0, -1)
                    pipe.multi()
                    self._delete(pipe, summary, item_ids)
                    pipe.execute()
                    return Deleted.DELETED
                except redis.WatchError:
                    continue  # an item moved (or the reply was lost): look again

    def _delete(self, pipe: redis.client.Pipeline, summary: BatchSummary, item_ids: Sequence[str]) -> None:
        k = self._keys
        batch_id = summary.batch_id
        for start in range(0, len(item_ids), _ITEMS):
            chunk = item_ids[start : start + _ITEMS]
            pipe.delete(*(key for item_id in chunk for key in (k.item(item_id), k.item_log(item_id))))
            for state in ItemState:
                if state.terminal:
                    pipe.zrem(k.state(state.value), *chunk)
            pipe.zrem(k.due(), *chunk)  # a finished item is due nothing, but a stray entry must not outlive it
        pipe.delete(k.batch(batch_id), k.batch_items(batch_id), k.batch_counts(batch_id), k.selection_seen(batch_id))
        pipe.delete(k.batch_admission(batch_id))
        pipe.zrem(k.batches(), batch_id)
        pipe.zrem(k.admitting(), batch_id)
        pipe.zrem(k.expanding(), batch_id)
        if summary.label:
            pipe.zrem(k.label(summary.label), batch_id)
        if summary.owner:  # an ended batch may not have been counted (and dropped) since it ended
            pipe.zrem(k.running(summary.owner.principal), batch_id)


def _cursor(summary: BatchSummary) -> str:
    return f"{summary.created_at!r}:{summary.batch_id}"


def _parse_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    score, _, batch_id = cursor.partition(":")
    return float(score), batch_id
