"""Admit: the batch's ``accepted`` items enter the pipeline, a chunk per task so a 10,000-item batch stays fast.

Also what the API sends after a user's "retry" (failed -> accepted): only items still ``accepted`` are enqueued,
so sending admit twice, or for a batch half under way, enqueues nothing twice that has moved on.
"""

from __future__ import annotations

from worker.domain.states import ItemState
from worker.queues import Task
from worker.steps.context import Next, Pipeline

CHUNK = 500


def admit(p: Pipeline, batch_id: str, cursor: int = 0) -> list[Next]:
    """Validate tasks for one chunk of the batch's accepted items, then an admit task for the next chunk."""
    ids = p.store.batch_item_ids(batch_id, cursor, cursor + CHUNK - 1)
    nexts = [Next.for_item(Task.VALIDATE, item) for item in p.store.get_items(ids) if item.state is ItemState.ACCEPTED]
    if len(ids) == CHUNK:
        nexts.append(Next(Task.ADMIT, {"batch_id": batch_id, "cursor": cursor + CHUNK}))
    return nexts
