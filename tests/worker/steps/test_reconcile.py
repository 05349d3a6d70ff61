"""The reconciler: overdue steps are sent again (once per due time), slots follow the items, repairs are counted."""

from __future__ import annotations

import time

from tests.support import walk_to
from worker import steps
from worker.data.accounts import CircuitPolicy
from worker.domain.spec import ItemSpec
from worker.domain.states import Event, ItemState
from worker.queues import TaskName
from worker.steps import Next

from .conftest import drive, image_id, run_step, store_items


def _later(ctx, seconds: float) -> None:
    ctx.clock = lambda: time.time() + seconds


def _repairs(ctx) -> dict[str, int]:
    return ctx.data.telemetry.repairs()


def _reconcile(ctx) -> list:
    """One pass, its resends recorded as sent (as the task does)."""
    nexts = steps.reconcile(ctx)
    steps.expect(ctx, nexts)
    return nexts


def test_fresh_items_are_left_alone(ctx, ims) -> None:
    store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    assert steps.reconcile(ctx) == []
    assert _repairs(ctx) == {}


def test_a_lost_admit_is_sent_again_once_for_the_whole_batch(ctx, ims) -> None:
    ids = store_items(ctx, *[ItemSpec(image_id=image_id(ims, "debian-12-base"), name=f"a{i}") for i in range(30)])
    batch_id = ctx.data.records.get_item(ids[0]).batch_id
    _later(ctx, ctx.settings.stall_seconds + 1)
    (admit,) = _reconcile(ctx)
    assert admit.task is TaskName.ADMIT and admit.kwargs == {"batch_id": batch_id, "cursor": 0}
    assert _reconcile(ctx) == []  # resent once per due time: no storm of validates, no second admit
    assert _repairs(ctx) == {"admit_resent": 1}
    ctx.clock = time.time
    drive(ctx, [admit])
    assert {ctx.data.records.get_item(i).state for i in ids} == {ItemState.SUCCEEDED}


def test_a_lost_validate_is_sent_again(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    item = ctx.data.records.get_item(item_id)
    ctx.data.records.move(item, Event.START_VALIDATION)  # its worker took it, then died
    ctx.data.records.admit_done(item.batch_id)
    _later(ctx, ctx.settings.stall_seconds + 1)
    assert [(n.task, n.kwargs["item_id"]) for n in _reconcile(ctx)] == [(TaskName.VALIDATE, item_id)]
    assert _repairs(ctx) == {"validate_resent": 1}


def test_a_validate_lost_after_its_admit_chunk_finished_is_sent_again(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    batch_id = ctx.data.records.get_item(item_id).batch_id
    sent = steps.admit(ctx, batch_id)  # the chunk is done; its validate task is recorded, then lost in the send
    steps.expect(ctx, sent)
    assert [n.task for n in sent] == [TaskName.VALIDATE]
    assert ctx.data.records.get_item(item_id).state is ItemState.ACCEPTED
    _later(ctx, ctx.settings.stall_seconds + 1)
    (resent,) = _reconcile(ctx)  # the batch's admit chain is over: only the item's own due time tells
    assert (resent.task, resent.kwargs["item_id"]) == (TaskName.VALIDATE, item_id)
    ctx.clock = time.time
    drive(ctx, [resent])
    assert ctx.data.records.get_item(item_id).state is ItemState.SUCCEEDED


def test_a_step_being_worked_on_is_not_resent_before_its_time_limit(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    item = ctx.data.records.get_item(item_id)
    ctx.data.records.move(item, Event.START_VALIDATION)
    ctx.data.records.admit_done(item.batch_id)
    ctx.data.records.mark_running(item_id, until=time.time() + ctx.settings.task_time_limit)
    _later(ctx, ctx.settings.task_time_limit - 1)
    assert _reconcile(ctx) == []
    _later(ctx, ctx.settings.task_time_limit + ctx.settings.stall_seconds + 1)
    assert [n.task for n in _reconcile(ctx)] == [TaskName.VALIDATE]


def test_slot_of_a_finished_item_goes_to_the_next(ctx, ims) -> None:
    ids = store_items(ctx, *[ItemSpec(image_id=image_id(ims, "debian-12-base"), name=f"r{i}") for i in range(6)])
    for item_id in ids:
        steps.validate(ctx, item_id)
    # The first item's worker died right after the item failed, before it handed its slot on: the slot leaked.
    walk_to(ctx.data.records, ids[0], ItemState.FAILED)
    nexts = steps.reconcile(ctx)
    assert [(n.task, n.kwargs["item_id"]) for n in nexts] == [(TaskName.SUBMIT, ids[5])]
    assert _repairs(ctx) == {"slot_freed": 1}


def test_a_granted_submit_that_was_lost_is_sent_again(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    (submit,) = steps.validate(ctx, item_id)  # granted a slot; the submit message is "lost"
    assert submit.task is TaskName.SUBMIT and ctx.data.slots.holds("default", item_id)
    ctx.data.records.admit_done(ctx.data.records.get_item(item_id).batch_id)  # validated here, not by an admit
    _later(ctx, ctx.settings.stall_seconds + 1)
    assert [(n.task, n.kwargs["item_id"]) for n in _reconcile(ctx)] == [(TaskName.SUBMIT, item_id)]
    assert _repairs(ctx) == {"submit_resent": 1}


def test_a_granted_item_with_nothing_due_and_no_live_lease_hands_its_slot_on(ctx, ims) -> None:
    ids = store_items(ctx, *[ItemSpec(image_id=image_id(ims, "debian-12-base"), name=f"h{i}") for i in range(6)])
    for item_id in ids:
        steps.validate(ctx, item_id)
    # The first item was granted a slot, then its submit and its due time were lost (issue 25: the reconciler only
    # resends what is due, so nothing would ever send it): the slot is held by an item nothing will move.
    ctx.data.records.forget_due([ids[0]])
    with ctx.data.control.submit_lock(ids[0], lease=5) as held:  # a delivery at work on it keeps the slot
        assert held and steps.reconcile(ctx) == []
    nexts = steps.reconcile(ctx)
    # Back at its place in line, the first of its batch: granted again, with its submit due this time.
    assert [(n.task, n.kwargs["item_id"]) for n in nexts] == [(TaskName.SUBMIT, ids[0])]
    assert _repairs(ctx) == {"slot_handed_on": 1} and ctx.data.slots.in_use("default") == 5
    steps.expect(ctx, nexts)
    assert steps.reconcile(ctx) == [] and _repairs(ctx) == {"slot_handed_on": 1}  # due now: left to its submit
    drive(ctx, nexts)
    assert ctx.data.records.get_item(ids[0]).state is ItemState.SUCCEEDED


def test_lost_poll_is_sent_with_the_current_sequence_and_the_copy_finishes(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(ctx, item_id)
    ctx.data.records.admit_done(ctx.data.records.get_item(item_id).batch_id)  # validated here, not by an admit
    steps.submit(ctx, item_id)  # the poll it asks for is "lost"
    ctx.data.slots.free("default", item_id)  # and so is its slot entry
    _later(ctx, ctx.settings.stall_seconds + 1)
    (poll,) = _reconcile(ctx)
    assert poll.task is TaskName.POLL and poll.kwargs["seq"] == 0
    assert _repairs(ctx) == {"poll_resent": 1, "slot_restored": 1}
    assert ctx.data.slots.holds("default", item_id)
    ctx.clock = time.time
    drive(ctx, [poll])
    assert ctx.data.records.get_item(item_id).state is ItemState.SUCCEEDED
    assert ctx.data.slots.in_use("default") == 0


def test_the_pass_that_meets_a_new_server_resends_running_steps_too(ctx, ims, redis_server) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(ctx, item_id)
    ctx.data.records.admit_done(ctx.data.records.get_item(item_id).batch_id)  # validated here, not by an admit
    (poll,) = steps.submit(ctx, item_id)
    steps.expect(ctx, [poll])
    assert _reconcile(ctx) == []  # the server met first
    # Its poll started (marked until its hard time limit) and then the server was replaced: the worker may have died
    # with the old one, or the failover lost what the poll wrote.
    ctx.data.records.mark_running(item_id, until=ctx.clock() + ctx.settings.task_time_limit - 0.5)
    redis_server.client().hset(ctx.data.keys.primary(), "run_id", "0" * 40)
    (resent,) = _reconcile(ctx)
    assert resent.task is TaskName.POLL and resent.kwargs == _as_resent(poll)
    ctx.data.records.mark_running(item_id, until=ctx.clock() + ctx.settings.task_time_limit - 0.5)  # the resend runs
    _later(ctx, 1.0)
    assert _reconcile(ctx) == []  # once: later passes leave running steps their time limit again
    assert _repairs(ctx) == {"poll_resent": 1}


def test_a_copy_between_long_polls_is_not_taken_for_stalled(make_context, ims) -> None:
    ctx = make_context(poll_max_interval=300.0, stall_seconds=10.0)
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(ctx, item_id)
    ctx.data.records.admit_done(ctx.data.records.get_item(item_id).batch_id)  # validated here, not by an admit
    (first,) = run_step(ctx, steps.Next.for_item(TaskName.SUBMIT, ctx.data.records.get_item(item_id)))
    (second,) = run_step(ctx, first)  # a poll, due again when the copy should end
    wait = second.countdown
    _later(ctx, wait - 1)  # its next poll is not due yet, however long that is
    assert not [n for n in steps.reconcile(ctx) if n.task is TaskName.POLL]
    _later(ctx, wait + ctx.settings.stall_seconds + 1)
    assert [n.kwargs["item_id"] for n in steps.reconcile(ctx) if n.task is TaskName.POLL] == [item_id]


def test_after_a_failover_a_step_due_before_it_is_resent_without_the_stall_margin(ctx, ims, redis_server) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(ctx, item_id)
    ctx.data.records.admit_done(ctx.data.records.get_item(item_id).batch_id)  # validated here, not by an admit
    (poll,) = steps.submit(ctx, item_id)  # the poll it asks for is lost with the old primary
    steps.expect(ctx, [poll])
    assert _reconcile(ctx) == []  # the server met first: nothing to recover
    # The server that answers now is not the one the reconciler met before (as after a failover or a restart).
    redis_server.client().hset(ctx.data.keys.primary(), "run_id", "0" * 40)
    _later(ctx, poll.countdown + 0.1)  # the poll is overdue, by far less than the stall margin
    (resent,) = _reconcile(ctx)
    assert resent.task is TaskName.POLL and resent.kwargs == _as_resent(poll)
    assert _repairs(ctx) == {"poll_resent": 1}
    _later(ctx, poll.countdown + 0.2 + resent.countdown)  # the resend's own due time belongs to the new server
    assert _reconcile(ctx) == []


def _as_resent(poll: Next) -> dict[str, object]:
    """A poll's arguments as the reconciler sends it again: a resent first look reads its own job."""
    return {k: v for k, v in poll.kwargs.items() if k != "first_look"}


def test_an_account_in_an_outage_gets_one_probe_that_says_what_its_line_waits_for(ctx) -> None:
    policy = CircuitPolicy(1, ctx.settings.probe_interval, ctx.settings.probe_max_interval)
    assert ctx.data.accounts.record_outcome("default", "copy", "503", "transient", policy) == "opened"
    (probe,) = [n for n in _reconcile(ctx) if n.task is TaskName.PROBE]
    assert probe.kwargs == {"account": "default", "blocked_by": "outage"}  # what Flower shows of it
    assert not [n for n in _reconcile(ctx) if n.task is TaskName.PROBE]  # one is scheduled already
