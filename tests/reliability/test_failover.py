"""High availability: Redis under Sentinel (a master, two replicas, three Sentinels) with two workers of their own
node names, beat and the API; the master SIGKILLed, paused past Sentinel's down-after, failed over twice, or a
worker host lost for good, each mid-batch. Nothing accepted is lost, nothing is copied twice, nothing is stuck and
no slot leaks; each row also says how long the failover took, when the API accepted work again and when every item
in flight at the fault had moved on.

Writes that must outlive a failover are confirmed by one replica (``IMSREP_REDIS_MIN_REPLICAS=1``); what a failover
can still lose (a Celery message, a transition not yet replicated) is resent by the reconciler or comes back with
the visibility-timeout sweep, which ``reconciler_repairs`` in each row shows.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from cli.processes import wait_until
from cli.stack import SentinelSpec
from worker.data import RecordStore, RedisTarget, open_data_layer
from worker.domain.states import ItemState

from .conftest import PREFIX

pytestmark = pytest.mark.integration

ITEMS = 200
SLOTS = 20  # one project whose IMS allows 20 copies at a time, so 200 copies take seconds, not minutes
WORKERS = ("w1", "w2")
# Sentinel notices a dead master after 1 s (30 s by default) and may fail over again 4 s later.
SENTINEL = SentinelSpec(master="imsrep", replicas=2, sentinels=3, down_after_ms=1000, failover_timeout_ms=2000)
HA_ENV = {
    "IMSREP_REDIS_MIN_REPLICAS": "1",
    "IMSREP_REDIS_REPLICA_TIMEOUT": "1",
    "IMSREP_REDIS_SOCKET_TIMEOUT": "2",
    "IMSREP_REDIS_CONNECT_TIMEOUT": "1",
    "IMSREP_ACCOUNTS__DEFAULT__SLOT_LIMIT": str(SLOTS),
}


def _ha_cluster(cluster, copy_seconds: float = 0.5):
    """Half-second copies: 200 of them on 20 slots still run for several seconds after a quarter of them ended, so
    the fault comes mid-batch, with items in flight in every step. Sources for the three tests that share one."""
    sources = 3 * ITEMS + 10
    return cluster(
        copy_seconds=copy_seconds, job_limit=SLOTS, workers=WORKERS, sentinel=SENTINEL, sources=sources, env=HA_ENV
    )


def _mid_batch(c, item_ids: list[str], share: float = 0.25) -> None:
    wait_until(lambda: c.terminal(item_ids) >= share * len(item_ids), 90, "part of the batch to finish", interval=0.2)


def _fail_over(c, fault, probe: str) -> dict[str, Any]:
    """Apply ``fault`` to the master and time the failover (until the Sentinels name another server) and the
    intake (until the API answers 202 again), side by side."""
    master = c.stack.redis_master()
    started = time.time()
    fault(master)

    def failover() -> float:
        wait_until(lambda: c.stack.redis_master() not in (None, master), 60, "a new master", interval=0.1)
        return round(time.time() - started, 1)

    with ThreadPoolExecutor(2) as pool:
        elected = pool.submit(failover)
        intake = pool.submit(c.first_accepted, probe, started, 90)
        failover_s = elected.result()
        intake_s, probe_item, answers = intake.result()
    return {
        "started": started,
        "failed_over": master,
        "new_master": c.stack.redis_master(),
        "failover_s": failover_s,
        "intake_s": intake_s,
        "probe_item": probe_item,
        "api_answers_during": dict(answers),
    }


def _finish(
    c, item_ids: list[str], sources: list[str], in_flight: tuple[dict[str, ItemState], float], fault_at: float
) -> dict[str, Any]:
    """Wait for the batch; count it; and time the resumption: seconds from the fault until every item that was in
    flight just before it had moved on to its next state (also the slowest per state it was in, and the median)."""
    finished = c.wait_terminal(item_ids, timeout=150)
    states, read_at = in_flight
    moved = c.wait_moved_on(list(states), read_at, timeout=30)
    late = fault_at - read_at
    times = {i: max(0.0, t - late) for i, t in c.moves(list(states), read_at).items() if t is not None}
    slowest: dict[str, float] = {}
    for item_id, seconds in times.items():
        slowest[states[item_id].value] = round(max(seconds, slowest.get(states[item_id].value, 0.0)), 1)
    ordered = sorted(times.values())
    figures = {
        **c.outcome(item_ids, sources),
        "in_flight_at_fault": len(states),
        "resumed_s": None if moved is None else round(max(0.0, moved - late), 1),
        "resumed_median_s": round(ordered[len(ordered) // 2], 1) if ordered else None,
        "resumed_by_state_s": slowest,
        "all_done": finished,
    }
    c.assert_running()  # no process was restarted by hand (beyond the Redis server the scenario brings back)
    return figures


def _check(figures: dict[str, Any]) -> None:
    assert figures["all_done"], figures
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stuck"] == 0, figures
    assert figures["by_state"] == {ItemState.SUCCEEDED.value: figures["items"]}, figures
    assert figures["slots_held_at_end"] == 0 and figures["peak_concurrent_jobs"] <= SLOTS, figures
    assert figures["resumed_s"] is not None, figures


def _ended(store: RecordStore, item_ids: list[str]) -> set[str]:
    return {item.id for item in store.get_items(item_ids) if item.terminal}


def _public(fault: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fault.items() if k not in ("started", "probe_item")}


def test_master_sigkilled_mid_batch_while_its_replicas_lag(shared_cluster, record) -> None:
    c = _ha_cluster(shared_cluster)
    sources = c.sources(ITEMS + 1)
    item_ids = c.submit(sources[:ITEMS])["item_ids"]
    _mid_batch(c, item_ids)
    # Replication stalls (both replicas paused): from now on the primary takes writes that no replica has. Copy
    # attempts cannot be confirmed meanwhile, so no copy call is made; polls and successes go on, on the primary only.
    # The servers but the master (an earlier test on the shared cluster may have made a replica the master).
    master = c.stack.redis_master()
    replicas = sorted(name for name in c.stack.services if name.startswith("redis") and name != master)
    for name in replicas:
        c.stack.pause(name)
    # A paused replica would still find in its socket buffer what the primary sent after the pause, and read it on
    # resuming (Valkey does before it answers a client): the primary drops its replica links too, so what it takes
    # from now on reaches no replica.
    primary = redis.Redis(port=c.stack.port(master), password=c.stack.passwords.server, socket_timeout=5)
    assert primary.client_kill_filter(_type="replica") == len(replicas)
    ahead = c.terminal(item_ids) + 10
    wait_until(lambda: c.terminal(item_ids) >= ahead, 60, "the primary to get ahead of its replicas", interval=0.2)
    in_flight = c.in_flight(item_ids)
    done_on_primary = _ended(c.store(), item_ids)
    done_on_replica: dict[str, set[str]] = {}

    def fault(master: str) -> None:
        c.lose(master)  # the primary dies with writes no replica has
        for name in replicas:
            c.stack.resume(name)
            # What this replica holds, read before a promotion lets the pipeline redo what it lacks.
            target = RedisTarget(f"redis://127.0.0.1:{c.stack.port(name)}/0", password=c.stack.passwords.server)
            done_on_replica[name] = _ended(open_data_layer(target, PREFIX).records, item_ids)

    fault_info = _fail_over(c, fault, sources[ITEMS])
    # What the failover lost: items that had ended on the old primary and had not on the replica promoted.
    done_on_new = done_on_replica[fault_info["new_master"]]
    all_ids = [*item_ids, fault_info["probe_item"]]
    figures = {
        **_finish(c, all_ids, sources, in_flight, fault_info["started"]),
        **_public(fault_info),
        "transitions_lost": len(done_on_primary - done_on_new),
    }
    record(
        "Sentinel: master SIGKILL",
        "replication stalled, then SIGKILL of the Redis master mid-batch (never restarted): the promoted replica "
        "lacks the primary's last writes; 2 workers, MIN_REPLICAS 1",
        figures,
    )
    _check(figures)
    assert figures["transitions_lost"] > 0, figures  # the failover did lose state, and it was recovered


def test_master_paused_past_the_down_after(shared_cluster, record) -> None:
    c = _ha_cluster(shared_cluster)
    sources = c.sources(ITEMS + 1)
    item_ids = c.submit(sources[:ITEMS])["item_ids"]
    _mid_batch(c, item_ids)
    in_flight = c.in_flight(item_ids)
    fault = _fail_over(c, c.stack.pause, sources[ITEMS])
    c.stack.resume(fault["failed_over"])  # the partition heals: Sentinel turns the old master into a replica
    wait_until(lambda: c.stack.redis_master() == fault["new_master"], 10, "the old master to stay demoted")
    all_ids = [*item_ids, fault["probe_item"]]
    figures = {**_finish(c, all_ids, sources, in_flight, fault["started"]), **_public(fault)}
    record(
        "Sentinel: master SIGSTOP",
        "SIGSTOP of the Redis master mid-batch past Sentinel's down-after (a partition), SIGCONT after the failover",
        figures,
    )
    _check(figures)


def test_two_failovers_in_one_run(cluster, record) -> None:
    c = _ha_cluster(cluster, copy_seconds=1.0)  # one-second copies: the batch outlasts the first failover and then some
    sources = c.sources(ITEMS + 2)
    item_ids = c.submit(sources[:ITEMS])["item_ids"]
    _mid_batch(c, item_ids, 0.2)
    in_flight = c.in_flight(item_ids)
    first = _fail_over(c, c.kill, sources[ITEMS])
    c.stack.restart(first["failed_over"])  # back as a replica of the new master
    c.stack.wait_topology()
    _mid_batch(c, item_ids, 0.5)
    second = _fail_over(c, c.lose, sources[ITEMS + 1])
    all_ids = [*item_ids, first["probe_item"], second["probe_item"]]
    figures = {
        **_finish(c, all_ids, sources, in_flight, first["started"]),
        **{f"first_{k}": v for k, v in _public(first).items()},
        **{f"second_{k}": v for k, v in _public(second).items()},
        # Sentinel may fail over once more on its own between the faults (a 1 s down-after on a busy machine); the
        # second fault hits whichever server is master then, so its new master may be the first one's again.
        "master_moved_between": second["failed_over"] != first["new_master"],
    }
    record(
        "Sentinel: two failovers",
        "SIGKILL of the master mid-batch; the old master back as a replica; SIGKILL of the new master",
        figures,
    )
    _check(figures)


def test_a_worker_host_lost_for_good(shared_cluster, record) -> None:
    c = _ha_cluster(shared_cluster)
    sources = c.sources(ITEMS)
    item_ids = c.submit(sources)["item_ids"]
    _mid_batch(c, item_ids)
    in_flight = c.in_flight(item_ids)
    started = time.time()
    c.lose("w1")  # its process group, main process and pool children; never restarted
    figures = _finish(c, item_ids, sources, in_flight, started)
    record(
        "worker host lost for good",
        "SIGKILL of one of two workers (w1) mid-batch, never restarted; Redis under Sentinel",
        figures,
    )
    _check(figures)
