"""The retention sweep: a finished batch goes once its last item ended longer ago than retention_days; nothing
else does (running batches, recent ones, a retried one)."""

from __future__ import annotations

import uuid

from tests.support import walk_to
from worker import steps
from worker.data import NewItem
from worker.domain.spec import ItemSpec
from worker.domain.states import Event, ItemState
from worker.steps.retention import DAY


def _batch(ctx, *states: ItemState) -> str:
    items = [NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default") for _ in states]
    ids = ctx.data.records.create_batch(items).item_ids
    for item_id, state in zip(ids, states, strict=True):
        walk_to(ctx.data.records, item_id, state)
    return ctx.data.records.get_item(ids[0]).batch_id


def test_only_batches_finished_longer_ago_than_retention_go(make_context) -> None:
    ctx = make_context(retention_days=2)
    T = ItemState
    old_done = _batch(ctx, T.SUCCEEDED, T.REJECTED, T.FAILED)
    old_running = _batch(ctx, T.SUCCEEDED, T.REPLICATING)
    old_retried = _batch(ctx, T.FAILED)
    cancelled_done = _batch(ctx, T.CANCELLED)
    now = ctx.clock()
    ctx.clock = lambda: now  # the first sweep notes when each finished batch ended
    assert steps.expire_batches(ctx) == []
    retried = ctx.data.records.batch_item_ids(old_retried)[0]
    assert ctx.data.records.move(ctx.data.records.get_item(retried), Event.RETRY).ok

    ctx.clock = lambda: now + 2 * DAY + 1  # three of them are now old enough; one has been set running again
    steps.expire_batches(ctx)
    left = {b: ctx.data.records.batch(b) for b in (old_done, old_running, old_retried, cancelled_done)}
    assert left[old_done] is None and left[cancelled_done] is None
    assert left[old_running] is not None and left[old_running].counts[ItemState.REPLICATING] == 1
    assert left[old_retried] is not None and left[old_retried].finished_at is None
    running_item = ctx.data.records.batch_item_ids(old_running)[1]
    assert ctx.data.records.get_item(running_item).state is ItemState.REPLICATING


def test_a_batch_is_kept_for_the_whole_retention_time(make_context) -> None:
    ctx = make_context(retention_days=1)
    batch_id = _batch(ctx, ItemState.SUCCEEDED)
    ended = ctx.data.records.get_item(ctx.data.records.batch_item_ids(batch_id)[0]).updated_at
    ctx.clock = lambda: ended + DAY - 5
    steps.expire_batches(ctx)
    assert ctx.data.records.batch(batch_id).finished_at == ended
    ctx.clock = lambda: ended + DAY + 5
    steps.expire_batches(ctx)
    assert ctx.data.records.batch(batch_id) is None
