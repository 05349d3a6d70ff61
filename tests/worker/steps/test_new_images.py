"""Confirm: an account's copies whose jobs ended free their slots at once, and their new images are looked at
together, with one listing; what the listing does not show active, or a check that was lost, falls back to a poll."""

from __future__ import annotations

import time
import uuid

from cli.processes import wait_until
from worker import steps
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName

from .conftest import image_id, ims_calls, store_items


def _ended(ctx, ims, n: int) -> list[str]:
    """``n`` copies of the account submitted, their IMS jobs ended (the simulator's copies take half a second)."""
    ids = store_items(ctx, *[ItemSpec(image_id=image_id(ims, "debian-12-base"), name=f"c{i}") for i in range(n)])
    for item_id in ids:
        steps.validate(ctx, item_id)
        steps.submit(ctx, item_id)
    jobs = [ctx.data.records.get_item(i).job_id for i in ids]
    wait_until(lambda: all(ims.get_job_progress(job).succeeded for job in jobs), 10, "the copies to end")
    return ids


def _long(ctx) -> None:
    """From now on the copies look 20 s old: long enough for their images to be looked at together."""
    ctx.clock = lambda: time.time() + 20


def test_copies_that_end_together_are_looked_at_with_one_listing(ctx, ims) -> None:
    ids = _ended(ctx, ims, 3)
    _long(ctx)
    sent = [n for item_id in ids for n in steps.poll(ctx, item_id, 0)]
    # Each poll that sees its job end frees the slot at once; the first sends the account's check, the rest join it.
    assert [n.kwargs for n in sent if n.task is TaskName.NEW_IMAGES] == [{"account": "default"}]
    assert ctx.data.slots.in_use("default") == 0
    assert {ctx.data.records.get_item(i).state for i in ids} == {ItemState.REPLICATING}

    before = ims_calls(ctx)
    steps.see_new_images(ctx, "default")
    items = [ctx.data.records.get_item(i) for i in ids]
    assert {i.state for i in items} == {ItemState.SUCCEEDED} and all(i.new_image_id for i in items)
    assert {k: n - before.get(k, 0) for k, n in ims_calls(ctx).items() if n != before.get(k, 0)} == {
        "list_images:200": 1
    }
    assert steps.see_new_images(ctx, "default") == []  # the line is empty: nothing is looked at twice


def test_a_short_copys_image_is_read_by_its_poll_at_once(ctx, ims) -> None:
    (item_id,) = _ended(ctx, ims, 1)  # half a second: a check's wait and hop would cost more than they save
    assert [n.task for n in steps.poll(ctx, item_id, 0)] == []
    assert ctx.data.records.get_item(item_id).state is ItemState.SUCCEEDED


def test_a_copy_the_listing_does_not_show_active_gets_a_poll_of_its_own(ctx, ims) -> None:
    (item_id,) = _ended(ctx, ims, 1)
    _long(ctx)
    steps.poll(ctx, item_id, 0)
    ctx.data.records.update_if(item_id, ItemState.REPLICATING, new_image_id=str(uuid.uuid4()))  # not in the page
    (own,) = steps.see_new_images(ctx, "default")
    assert (own.task, own.kwargs["item_id"], own.kwargs["seq"]) == (TaskName.POLL, item_id, 0)


def test_a_lost_check_ends_in_the_copys_own_poll_and_no_slot_is_taken_back(ctx, ims) -> None:
    (item_id,) = _ended(ctx, ims, 1)
    _long(ctx)
    steps.poll(ctx, item_id, 0)  # its check is sent, and lost
    ctx.clock = lambda: time.time() + 20 + ctx.settings.stall_seconds + 2
    resent = steps.reconcile(ctx)
    assert [(n.task, n.kwargs["item_id"]) for n in resent if "item_id" in n.kwargs] == [(TaskName.POLL, item_id)]
    assert ctx.data.slots.in_use("default") == 0  # a copy whose job ended holds no slot, even for the reconciler
    assert steps.poll(ctx, item_id, 0) == [] and ctx.data.records.get_item(item_id).state is ItemState.SUCCEEDED
