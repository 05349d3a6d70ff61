"""The reconciler: lost next steps are sent again, slots follow the items, repairs are counted."""

from __future__ import annotations

import time

from worker import steps
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import Task

from .conftest import drive, image_id, store_items


def _later(p, seconds: float) -> None:
    p.clock = lambda: time.time() + seconds


def _repairs(p) -> dict[str, str]:
    return p.store.redis.hgetall(f"{p.prefix}:repairs")


def test_fresh_items_are_left_alone(pipeline, ims) -> None:
    store_items(pipeline, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    assert steps.reconcile(pipeline) == []
    assert _repairs(pipeline) == {}


def test_lost_validate_is_sent_again(pipeline, ims) -> None:
    (item_id,) = store_items(pipeline, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    _later(pipeline, pipeline.settings.stall_seconds + 1)
    nexts = steps.reconcile(pipeline)
    assert [(n.task, n.kwargs["item_id"]) for n in nexts] == [(Task.VALIDATE, item_id)]
    assert _repairs(pipeline) == {"validate_resent": "1"}


def test_slot_of_a_finished_item_goes_to_the_next(pipeline, ims) -> None:
    p = pipeline
    ids = store_items(p, *[ItemSpec(image_id=image_id(ims, "debian-12-base"), name=f"r{i}") for i in range(6)])
    for item_id in ids:
        steps.validate(p, item_id)
    # The first item's worker died right after the item was cancelled... by a bug or a hand: its slot leaked.
    p.store.transition(ids[0], ItemState.SUBMITTING)
    p.store.transition(ids[0], ItemState.FAILED)
    nexts = steps.reconcile(p)
    assert [(n.task, n.kwargs["item_id"]) for n in nexts] == [(Task.SUBMIT, ids[5])]
    assert _repairs(p) == {"slot_freed": "1"}


def test_waiting_item_lost_from_its_queue_is_queued_again(pipeline, ims) -> None:
    p = pipeline
    (item_id,) = store_items(p, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    p.store.transition(item_id, ItemState.VALIDATING)
    p.store.transition(item_id, ItemState.WAITING, target_name="lost-one")  # crashed before joining the queue
    _later(p, p.settings.stall_seconds + 1)
    nexts = steps.reconcile(p)
    assert [(n.task, n.kwargs["item_id"]) for n in nexts] == [(Task.SUBMIT, item_id)]
    assert _repairs(p) == {"requeued_waiting": "1"}


def test_lost_poll_is_sent_with_the_current_sequence_and_the_copy_finishes(pipeline, ims) -> None:
    p = pipeline
    (item_id,) = store_items(p, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(p, item_id)
    steps.submit(p, item_id)  # the poll it asks for is "lost"
    p.slots.release("default", item_id)  # and so is its slot entry
    _later(p, p.settings.stall_seconds + 1)
    (poll,) = steps.reconcile(p)
    assert poll.task is Task.POLL and poll.kwargs["seq"] == 0
    assert _repairs(p) == {"poll_resent": "1", "slot_restored": "1"}
    assert p.slots.holds("default", item_id)
    p.clock = time.time
    drive(p, [poll])
    assert p.store.get_item(item_id).state is ItemState.SUCCEEDED
    assert p.slots.in_use("default") == 0


def test_a_copy_between_long_polls_is_not_taken_for_stalled(make_pipeline, ims) -> None:
    p = make_pipeline(poll_max_interval=300.0, stall_seconds=10.0)
    (item_id,) = store_items(p, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(p, item_id)
    steps.submit(p, item_id)
    _later(p, 60)  # its next poll may legitimately be up to 300 s away
    assert not [n for n in steps.reconcile(p) if n.task is Task.POLL]
    _later(p, 300 + p.settings.task_time_limit + 1)
    assert [n.kwargs["item_id"] for n in steps.reconcile(p) if n.task is Task.POLL] == [item_id]
