"""What the routes do, without HTTP: submit, report, cancel and retry, over the data layer and the enqueuer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api.enqueue import Enqueuer
from api.errors import NotFound
from api.validation import parse_batch, parse_item
from config.settings import Settings
from worker.data import BatchSummary, DataLayer, StoredBatch
from worker.domain.item import ReplicationItem, Transition
from worker.domain.reasons import ReasonCode
from worker.domain.states import CANCELLABLE, MOVES, Event, ItemState

log = logging.getLogger(__name__)

_PAGE = 500  # items read per round trip when a whole batch is walked
RUNNING_NOT_CANCELLABLE = "a running IMS copy job cannot be cancelled; items already submitted to IMS will finish"

# Fields a new attempt starts without: the previous attempt's outcome, its IMS job and what validation resolved.
_ATTEMPT_FIELDS = (
    "source_name",
    "source_size",
    "target_name",
    "cmk_id",
    "submit_started_at",
    "job_id",
    "job_started_at",
    "progress",
    "new_image_id",
)


@dataclass(frozen=True)
class CancelCounts:
    cancelled: int
    already_terminal: int
    not_cancellable_running: int


class ReplicationService:
    def __init__(self, data: DataLayer, enqueuer: Enqueuer, settings: Settings) -> None:
        self.data = data
        self.records = data.records
        self.enqueuer = enqueuer
        self.settings = settings

    # Submitting -------------------------------------------------------------------------------------------------
    def submit_batch(self, payload: Any) -> StoredBatch:
        return self._store_and_admit(parse_batch(payload, self.settings))

    def submit_one(self, payload: Any) -> StoredBatch:
        return self._store_and_admit([parse_item(payload, self.settings)])

    def _store_and_admit(self, items: list) -> StoredBatch:
        stored = self.records.create_batch(items)  # one MULTI/EXEC: all of the batch or none of it
        self.enqueuer.send_admit(stored.batch_id)  # a failure is logged; the reconciler admits stale items
        return stored

    # Reading ----------------------------------------------------------------------------------------------------
    def batch(self, batch_id: str) -> BatchSummary:
        summary = self.records.batch(batch_id)
        if summary is None:
            raise NotFound(f"batch {batch_id} not found")
        return summary

    def batch_items(
        self, batch_id: str, state: ItemState | None, limit: int, cursor: int
    ) -> tuple[list[ReplicationItem], int | None]:
        self.batch(batch_id)
        return self.records.batch_items(batch_id, state=state, limit=limit, cursor=cursor)

    def replication(self, item_id: str) -> tuple[ReplicationItem, list[Transition]]:
        item = self.records.get_item(item_id)
        if item is None:
            raise NotFound(f"replication {item_id} not found")
        return item, self.records.history(item_id)

    # Changing ---------------------------------------------------------------------------------------------------
    def cancel(self, batch_id: str) -> CancelCounts:
        """Cancel every item that has not reached IMS's copy call; each one is an atomic, checked transition."""
        self.batch(batch_id)
        cancelled = terminal = running = 0
        for item in self._all_items(batch_id):
            state = item.state
            if state in CANCELLABLE:
                result = self.records.move(
                    item,
                    Event.CANCEL,
                    reason=ReasonCode.CANCELLED,
                    message="cancelled by the user",
                )
                if result.ok:
                    cancelled += 1
                    continue
                state = result.previous  # a worker moved it on since we read it
            if state is not None and state.terminal:
                terminal += 1
            else:
                running += 1
        return CancelCounts(cancelled, terminal, running)

    def retry(self, batch_id: str) -> int:
        """Put the batch's failed items back to ``accepted`` as a new attempt, then admit them with one message."""
        self.batch(batch_id)
        cleared = dict.fromkeys(_ATTEMPT_FIELDS)
        retried = 0
        for item in self._all_items(batch_id):
            if item.state not in MOVES[Event.RETRY].sources:
                continue
            # The checked transition makes a concurrent second retry of the same item a no-op.
            result = self.records.move(
                item,
                Event.RETRY,
                attempt=item.attempt + 1,
                error_retries=0,
                **cleared,
            )
            retried += result.ok
        if retried:
            self.enqueuer.send_admit(batch_id)
        return retried

    def _all_items(self, batch_id: str) -> Iterator[ReplicationItem]:
        cursor: int | None = 0
        while cursor is not None:
            page, cursor = self.records.batch_items(batch_id, limit=_PAGE, cursor=cursor)
            yield from page
