"""Retention: finished batches are deleted with their items ``retention_days`` after their last item ended, so
Redis memory stays bounded (it runs with ``noeviction``: full, it would refuse new batches).

Runs every ``retention_sweep_seconds`` (Celery beat). A batch counts as finished when every item is terminal; when
its last item ended is its ``finished_at``, kept by the moves of its items (a retry clears it), and recorded by the
sweep for a batch that ended before the moves kept it.
The deletion itself re-checks, atomically, that every item is still terminal (``worker.data.lifecycle``): an item
that is running is never touched.
"""

from __future__ import annotations

import logging

from worker.data import Deleted
from worker.steps.context import Next, StepContext

log = logging.getLogger("worker.retention")

DAY = 86_400
_PAGE = 500


def expire_batches(ctx: StepContext) -> list[Next]:
    keep = ctx.settings.retention_days * DAY
    now = ctx.clock()
    expired: list[str] = []
    ids: list[str] = []
    for batch_id in ctx.data.lifecycle.all_ids():
        ids.append(batch_id)
        if len(ids) == _PAGE:
            expired += _expired(ctx, ids, now - keep)
            ids = []
    expired += _expired(ctx, ids, now - keep)
    deleted = [batch_id for batch_id in expired if ctx.data.lifecycle.delete(batch_id) is Deleted.DELETED]
    if deleted:
        log.info("retention: deleted %d finished batches older than %g days", len(deleted), ctx.settings.retention_days)
    return []


def _expired(ctx: StepContext, ids: list[str], ended_before: float) -> list[str]:
    expired = []
    for summary in ctx.data.records.batches(ids):
        if summary is None:
            continue
        ended = ctx.data.lifecycle.note_finished(summary)
        if ended is not None and ended < ended_before:
            expired.append(summary.batch_id)
    return expired
