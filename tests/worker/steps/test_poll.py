"""Poll: progress-based countdowns, duplicate chains ended, the deadline."""

from __future__ import annotations

from worker import steps
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import Task

from .conftest import image_id, store_items


def _replicating(p, ims) -> str:
    (item_id,) = store_items(p, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(p, item_id)
    (poll,) = steps.submit(p, item_id)
    assert poll.kwargs["seq"] == 0 and poll.countdown == p.settings.poll_initial_delay
    return item_id


def test_a_duplicate_poll_ends_its_chain(make_pipeline) -> None:
    p = make_pipeline(poll_max_interval=5.0)
    ims = p.clients("default")
    item_id = _replicating(p, ims)
    (nxt,) = steps.poll(p, item_id, 0)
    assert nxt.task is Task.POLL and nxt.kwargs["seq"] == 1
    assert p.settings.poll_min_interval <= nxt.countdown <= p.settings.poll_max_interval
    assert steps.poll(p, item_id, 0) == []  # the same message again: no second chain
    assert p.store.get_item(item_id).updated_at > 0


def test_a_redelivered_poll_takes_over_a_chain_whose_next_poll_was_lost(make_pipeline) -> None:
    p = make_pipeline(poll_max_interval=5.0)
    item_id = _replicating(p, p.clients("default"))
    steps.poll(p, item_id, 0)  # claimed 1, and (say) its worker died before sending poll 1
    (nxt,) = steps.poll(p, item_id, 0, redelivered=True)
    assert nxt.kwargs["seq"] == 2
    # Had poll 1 been sent after all, only one of it and the redelivered poll goes on.
    assert steps.poll(p, item_id, 1) == []


def test_deadline_fails_the_item_and_frees_the_slot(make_pipeline, ims) -> None:
    p = make_pipeline(poll_deadline_seconds=0.001)
    item_id = _replicating(p, p.clients("default"))
    assert steps.poll(p, item_id, 0) == []
    item = p.store.get_item(item_id)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.POLL_DEADLINE
    assert p.slots.in_use("default") == 0


def test_poll_of_a_finished_item_does_nothing(pipeline, ims) -> None:
    item_id = _replicating(pipeline, ims)
    pipeline.store.transition(item_id, ItemState.FAILED, reason=ReasonCode.IMS_JOB_FAILED)
    assert steps.poll(pipeline, item_id, 0) == []
    assert pipeline.slots.in_use("default") == 0  # the slot of a terminal item is given back
