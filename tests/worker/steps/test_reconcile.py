"""The reconciler: lost next steps are sent again, slots follow the items, repairs are counted."""

from __future__ import annotations

import time

from tests.support import walk_to
from worker import steps
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName

from .conftest import drive, image_id, store_items


def _later(ctx, seconds: float) -> None:
    ctx.clock = lambda: time.time() + seconds


def _repairs(ctx) -> dict[str, int]:
    return ctx.data.telemetry.repairs()


def test_fresh_items_are_left_alone(ctx, ims) -> None:
    store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    assert steps.reconcile(ctx) == []
    assert _repairs(ctx) == {}


def test_lost_validate_is_sent_again(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    _later(ctx, ctx.settings.stall_seconds + 1)
    nexts = steps.reconcile(ctx)
    assert [(n.task, n.kwargs["item_id"]) for n in nexts] == [(TaskName.VALIDATE, item_id)]
    assert _repairs(ctx) == {"validate_resent": 1}


def test_slot_of_a_finished_item_goes_to_the_next(ctx, ims) -> None:
    ids = store_items(ctx, *[ItemSpec(image_id=image_id(ims, "debian-12-base"), name=f"r{i}") for i in range(6)])
    for item_id in ids:
        steps.validate(ctx, item_id)
    # The first item's worker died right after the item was cancelled... by a bug or a hand: its slot leaked.
    walk_to(ctx.data.records, ids[0], ItemState.FAILED)
    nexts = steps.reconcile(ctx)
    assert [(n.task, n.kwargs["item_id"]) for n in nexts] == [(TaskName.SUBMIT, ids[5])]
    assert _repairs(ctx) == {"slot_freed": 1}


def test_waiting_item_lost_from_its_queue_is_queued_again(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    walk_to(ctx.data.records, item_id, ItemState.WAITING, target_name="lost-one")  # crashed before joining the queue
    _later(ctx, ctx.settings.stall_seconds + 1)
    nexts = steps.reconcile(ctx)
    assert [(n.task, n.kwargs["item_id"]) for n in nexts] == [(TaskName.SUBMIT, item_id)]
    assert _repairs(ctx) == {"requeued_waiting": 1}


def test_lost_poll_is_sent_with_the_current_sequence_and_the_copy_finishes(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(ctx, item_id)
    steps.submit(ctx, item_id)  # the poll it asks for is "lost"
    ctx.data.slots.release("default", item_id)  # and so is its slot entry
    _later(ctx, ctx.settings.stall_seconds + 1)
    (poll,) = steps.reconcile(ctx)
    assert poll.task is TaskName.POLL and poll.kwargs["seq"] == 0
    assert _repairs(ctx) == {"poll_resent": 1, "slot_restored": 1}
    assert ctx.data.slots.holds("default", item_id)
    ctx.clock = time.time
    drive(ctx, [poll])
    assert ctx.data.records.get_item(item_id).state is ItemState.SUCCEEDED
    assert ctx.data.slots.in_use("default") == 0


def test_a_copy_between_long_polls_is_not_taken_for_stalled(make_context, ims) -> None:
    ctx = make_context(poll_max_interval=300.0, stall_seconds=10.0)
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(ctx, item_id)
    steps.submit(ctx, item_id)
    _later(ctx, 60)  # its next poll may legitimately be up to 300 s away
    assert not [n for n in steps.reconcile(ctx) if n.task is TaskName.POLL]
    _later(ctx, 300 + ctx.settings.task_time_limit + 1)
    assert [n.kwargs["item_id"] for n in steps.reconcile(ctx) if n.task is TaskName.POLL] == [item_id]
