"""Poll: progress-based countdowns, duplicate chains ended, the deadline."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from cli.processes import wait_until
from tests.support import walk_to
from worker import steps
from worker.domain.pools import pool_name_of
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName
from worker.runtime import build_context
from worker.steps import StepContext, forecast
from worker.steps.poll import END_MARGIN, LEAST_MARGIN, SIBLINGS, _remaining, first_poll

from .conftest import image_id, sim_settings, store_items


def _replicating(ctx, ims) -> str:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(ctx, item_id)
    (poll,) = steps.submit(ctx, item_id)
    assert poll.kwargs["seq"] == 0 and poll.countdown == ctx.settings.poll_initial_delay
    return item_id


def test_a_duplicate_poll_ends_its_chain(make_context) -> None:
    ctx = make_context(poll_max_interval=5.0)
    ims = ctx.clients("default")
    item_id = _replicating(ctx, ims)
    (nxt,) = steps.poll(ctx, item_id, 0)
    assert nxt.task is TaskName.POLL and nxt.kwargs["seq"] == 1
    assert ctx.settings.poll_min_interval <= nxt.countdown <= ctx.settings.poll_max_interval
    assert steps.poll(ctx, item_id, 0) == []  # the same message again: no second chain
    assert ctx.data.records.get_item(item_id).updated_at > 0


def test_a_redelivered_poll_takes_over_a_chain_whose_next_poll_was_lost(make_context) -> None:
    ctx = make_context(poll_max_interval=5.0)
    item_id = _replicating(ctx, ctx.clients("default"))
    steps.poll(ctx, item_id, 0)  # claimed 1, and (say) its worker died before sending poll 1
    (nxt,) = steps.poll(ctx, item_id, 0, redelivered=True)
    assert nxt.kwargs["seq"] == 2
    # Had poll 1 been sent after all, only one of it and the redelivered poll goes on.
    assert steps.poll(ctx, item_id, 1) == []


def test_deadline_fails_the_item_and_frees_the_slot(make_context, ims) -> None:
    ctx = make_context(poll_deadline_seconds=0.001)
    item_id = _replicating(ctx, ctx.clients("default"))
    assert steps.poll(ctx, item_id, 0) == []
    item = ctx.data.records.get_item(item_id)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.POLL_DEADLINE
    assert ctx.data.slots.in_use("default") == 0


def test_poll_of_a_finished_item_does_nothing(ctx, ims) -> None:
    item_id = _replicating(ctx, ims)
    walk_to(ctx.data.records, item_id, ItemState.FAILED, reason=ReasonCode.IMS_JOB_FAILED)
    assert steps.poll(ctx, item_id, 0) == []
    assert ctx.data.slots.in_use("default") == 0  # the slot of a terminal item is given back


def test_a_coarse_early_reading_polls_again_by_the_earliest_end_it_allows(ctx, ims) -> None:
    item = ctx.data.records.get_item(_replicating(ctx, ims))
    # 1 % after 1 s: the copy takes between 50 s (2 % done) and 100 s. Reckoned from the reading's low end the
    # next poll would come after 100 s, up to 40 s after a 60 s copy ended; it comes by 50 s and reads again.
    assert _remaining(ctx, item, 0.01, 1.0) <= 1.0 * (1 - 0.02) / 0.02
    # A reading that says enough (half done after 30 s) is taken at its low end: the poll lands just after the end.
    assert 30.0 <= _remaining(ctx, item, 0.5, 30.0) <= 31.0


def test_a_forecast_poll_aims_as_far_past_the_end_as_the_pools_copies_ran_late(ctx, ims) -> None:
    item = ctx.data.records.get_item(_replicating(ctx, ims))
    ctx.settings = ctx.settings.model_copy(update={"poll_max_interval": 300.0})  # the suite's polls are capped short
    pool, expected = pool_name_of(item), lambda: forecast.predict(ctx, pool, item.source_size)
    for seconds in (100.0, 100.0, 100.0, 100.0):
        ctx.data.accounts.record_duration(pool, item.source_size, seconds)
    assert first_poll(ctx, item).countdown == pytest.approx(100.0 * (1 + LEAST_MARGIN))  # they keep to it: just past
    ctx.data.accounts.record_duration(pool, item.source_size, 101.0)  # 0.8 % past the 100.2 s estimate
    assert first_poll(ctx, item).countdown == pytest.approx(101.0)
    ctx.data.accounts.record_duration(pool, item.source_size, 150.0)  # copies that vary: no more than END_MARGIN
    assert first_poll(ctx, item).countdown == pytest.approx(expected() * (1 + END_MARGIN))


# -- copies started together, before the pool has a forecast, share their first look ------------------------------


@pytest.fixture
def slow_sim(start_simulator):
    return start_simulator(copy_seconds=20, image_quota=1000, seed=7)


@pytest.fixture
def slow_ctx(redis_server, slow_sim) -> Iterator[StepContext]:
    ctx = build_context(sim_settings(redis_server.url, slow_sim, f"t{uuid.uuid4().hex[:8]}"))
    yield ctx
    ctx.clients.close()


def _job_reads(sim) -> int:
    return sum(httpx.get(f"{sim.url}/_sim/stats").json()["by_endpoint"].get("job_progress", {}).values())


def _started(ctx, ims, names: list[str]) -> list[str]:
    ids = store_items(ctx, *(ItemSpec(image_id=image_id(ims, "debian-12-base"), name=n) for n in names))
    for item_id in ids:
        steps.validate(ctx, item_id)
    for item_id in ids:
        steps.submit(ctx, item_id)
    return ids


def _running_for(ctx, ids: list[str], seconds: float) -> None:
    # 1 % of a 20 s copy takes 0.2 s: read before that, process_percent says nothing to share.
    started = max(ctx.data.records.get_item(i).job_started_at for i in ids)
    wait_until(lambda: time.time() - started > seconds, 10, f"copies {seconds} s under way")


def test_copies_started_together_share_the_first_look_at_one_of_them(slow_ctx, slow_sim) -> None:
    ctx = slow_ctx
    ids = _started(ctx, ctx.clients("default"), ["together-1", "together-2", "together-3"])
    _running_for(ctx, ids, 0.5)
    before = _job_reads(slow_sim)
    waits = [steps.poll(ctx, item_id, 0, first_look=True)[0].countdown for item_id in ids]
    assert _job_reads(slow_sim) - before == 1  # one job read for the three
    # All three look again by the earliest end the reading allows, about when the one that was read does.
    assert all(ctx.settings.poll_min_interval <= w < 20 for w in waits) and max(waits) - min(waits) < 0.5


def test_a_copy_started_apart_from_the_others_takes_its_own_first_look(slow_ctx, slow_sim) -> None:
    ctx = slow_ctx
    ims = ctx.clients("default")
    (first,) = _started(ctx, ims, ["apart-1"])
    _running_for(ctx, [first], SIBLINGS + 0.2)
    (later,) = _started(ctx, ims, ["apart-2"])
    _running_for(ctx, [later], 0.5)
    before = _job_reads(slow_sim)
    steps.poll(ctx, first, 0, first_look=True)
    steps.poll(ctx, later, 0, first_look=True)  # started more than SIBLINGS after the first: its own reading
    assert _job_reads(slow_sim) - before == 2
