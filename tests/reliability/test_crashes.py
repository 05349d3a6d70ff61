"""Crashes: the worker SIGKILLed at random points mid-batch, Redis SIGKILLed mid-batch; nothing lost, copied twice
or stuck."""

from __future__ import annotations

import random

import pytest

from cli.processes import wait_until
from worker.domain.states import ItemState

pytestmark = pytest.mark.integration

ITEMS = 100
SLOT_LIMIT = 5
# Where the worker is killed: at a random point in each of these spans of the batch's progress (the share of its
# items ended), from validation to the last polls. Points of progress, not of time: every kill lands mid-batch
# however fast the machine runs it (three kills after 2-7 s sleeps missed a batch that a faster machine had finished).
KILL_SPANS = ((0.0, 0.25), (0.3, 0.55), (0.6, 0.85))


def _terminal(c, item_ids: list[str]) -> int:
    return sum(1 for s in c.states(item_ids).values() if s is not None and s.terminal)


def _kill_worker_during(c, item_ids: list[str], rng: random.Random) -> list[int]:
    """SIGKILL the worker's process group (main process and pool children) at each kill point and start it again;
    the items ended at each kill."""
    kills = []
    for low, high in KILL_SPANS:
        point = int(len(item_ids) * rng.uniform(low, high))
        reached = lambda point=point: c.assert_running() or _terminal(c, item_ids) >= point  # noqa: E731
        wait_until(reached, 120, f"{point} items of the batch to end", interval=0.1)
        kills.append(_terminal(c, item_ids))
        c.kill("worker")
        c.start_worker()
    return kills


def _mid_batch(kills: list[int], items: int) -> int:
    """The kills that found items of the batch still to end."""
    return sum(1 for done in kills if done < items)


def test_worker_sigkilled_at_random_moments(shared_cluster, record) -> None:
    c = shared_cluster(copy_seconds=0.5)
    sources = c.sources(ITEMS)
    item_ids = c.submit(sources)["item_ids"]
    kills = _kill_worker_during(c, item_ids, random.Random(20240611))
    finished = c.wait_terminal(item_ids, timeout=150)
    figures = {**c.outcome(item_ids, sources), "worker_kills": len(kills), "terminal_at_each_kill": kills}
    faults = "SIGKILL of the worker's process group at three random points of the batch's progress, restarted"
    record("worker SIGKILL x3", faults, figures)
    assert finished and _mid_batch(kills, ITEMS) == len(KILL_SPANS), figures
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stuck"] == 0, figures
    assert figures["by_state"] == {ItemState.SUCCEEDED.value: ITEMS}, figures
    assert figures["slots_held_at_end"] == 0 and figures["peak_concurrent_jobs"] <= SLOT_LIMIT, figures


def test_redis_sigkilled_mid_batch_and_restarted_on_its_data(shared_cluster, record) -> None:
    c = shared_cluster(copy_seconds=0.5)  # half a second: at the kill, copies of every step are still in flight
    sources = c.sources(ITEMS + 10)
    item_ids = c.submit(sources[:ITEMS])["item_ids"]
    batches = c.redis().zcard("rel:batches")  # this one and those of the module's earlier tests on this cluster
    wait_until(lambda: _terminal(c, item_ids) >= 20, 60, "a fifth of the batch to finish", interval=0.2)
    c.kill("redis")
    # The API refuses work while Redis is down, and writes nothing half-way.
    with c.api() as api:
        refused = api.post("/v1/batches", json={"items": [{"image_id": s} for s in sources[ITEMS:]]})
    c.start_redis()
    batches_after_restart = c.redis().zcard("rel:batches")
    # Back up: the same API, worker and beat carry on without a restart.
    late = c.submit(sources[ITEMS:])["item_ids"]
    all_ids = item_ids + late
    finished = c.wait_terminal(all_ids, timeout=150)
    figures = {
        **c.outcome(all_ids, sources),
        "api_status_while_down": refused.status_code,
        "batches_after_restart": batches_after_restart,
    }
    record("Redis SIGKILL + restart", "SIGKILL of Redis mid-batch, restarted on the same port and AOF", figures)
    assert refused.status_code == 503 and batches_after_restart == batches, figures
    assert finished and figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stuck"] == 0, figures
    assert figures["by_state"] == {ItemState.SUCCEEDED.value: ITEMS + 10}, figures
    assert figures["slots_held_at_end"] == 0 and figures["peak_concurrent_jobs"] <= SLOT_LIMIT, figures


CROSS_REGION_ITEMS = 60
SOUTH = "cn-south-1"


def test_worker_sigkilled_during_cross_region_copies(cluster, record) -> None:
    """Cross-region copies (made and polled in cn-north-4, active in cn-south-1, then tagged there) with the
    worker SIGKILLed three times: none lost, none copied twice in the destination, none stuck (finishing included),
    and IMS's 5 cross-region copies never exceeded."""
    c = cluster(copy_seconds=1.0, regions=(SOUTH,))
    sources = c.sources(CROSS_REGION_ITEMS)
    item_ids = c.submit(sources, target_region=SOUTH, tags={"run": "reliability"})["item_ids"]
    kills = _kill_worker_during(c, item_ids, random.Random(20261128))
    finished = c.wait_terminal(item_ids, timeout=180)
    items = c.store().get_items(item_ids)
    figures = {
        **c.outcome(item_ids, sources, region=SOUTH),
        # Its copies are all cross-region: the peak that matters is IMS's other pool of 5.
        "peak_concurrent_jobs": c.project()["peak_concurrent_cross_region_jobs"],
        "tagged": sum(1 for i in items if i.followups and i.followups.tags and i.followups.tags.status == "applied"),
        "worker_kills": len(kills),
        "terminal_at_each_kill": kills,
    }
    faults = (
        "SIGKILL of the worker's process group at three random points of the progress of "
        f"{CROSS_REGION_ITEMS} tagged cross-region copies, restarted"
    )
    record("cross-region, worker SIGKILL x3", faults, figures)
    assert finished and _mid_batch(kills, CROSS_REGION_ITEMS) == len(KILL_SPANS), figures
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stuck"] == 0, figures
    assert figures["by_state"] == {ItemState.SUCCEEDED.value: CROSS_REGION_ITEMS}, figures
    assert figures["tagged"] == CROSS_REGION_ITEMS and figures["slots_held_at_end"] == 0, figures
    assert figures["peak_concurrent_jobs"] <= SLOT_LIMIT, figures
