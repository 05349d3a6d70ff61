"""What workers record for operators, read back the way /metrics and /readyz read it."""

from __future__ import annotations

import pytest

from worker.data import DataLayer, Keyspace
from worker.data.telemetry import FORGET_WORKER_AFTER


@pytest.fixture
def data(redis_server) -> DataLayer:
    return redis_server.data()


def test_heartbeats_count_recent_workers_and_forget_old_ones(data: DataLayer) -> None:
    t = data.telemetry
    t.heartbeat("old@host", 1000.0)
    t.heartbeat("w1@host", 1000.0 + FORGET_WORKER_AFTER + 1)  # prunes old@host
    t.heartbeat("w2@host", 1000.0 + FORGET_WORKER_AFTER + 5)
    assert t.workers_seen(since=0) == 2
    assert t.workers_seen(since=1000.0 + FORGET_WORKER_AFTER + 3) == 1
    t.forget_worker("w2@host")
    assert t.workers_seen(since=0) == 1


def test_counters_read_back_by_label(data: DataLayer) -> None:
    t = data.telemetry
    t.record_ims_outcome("copy", "200")
    t.record_ims_outcome("copy", "IMG.0060")
    t.record_ims_outcome("copy", "200")
    t.record_retry("replication.poll", "transient")
    t.record_repairs({"poll_resent": 2, "slot_freed": 1})
    t.record_repairs({"poll_resent": 1})
    assert t.ims_outcomes() == {("copy", "200"): 2, ("copy", "IMG.0060"): 1}
    assert t.retries() == {("replication.poll", "transient"): 1}
    assert t.repairs() == {"poll_resent": 3, "slot_freed": 1}


def test_latency_histogram_is_cumulative_per_state_and_mode(data: DataLayer) -> None:
    t = data.telemetry
    for seconds in (0.5, 3.0, 3.0, 20_000.0):
        t.record_latency("succeeded", seconds)
    t.record_latency("succeeded", 700.0, "cross-region")
    assert t.latency() == {}  # counted in the process until its task ends
    data.flush()
    latency = t.latency()
    assert set(latency) == {("succeeded", "in-region"), ("succeeded", "cross-region")}
    histogram = latency[("succeeded", "in-region")]
    buckets = dict(histogram.buckets)
    assert buckets["1.0"] == 1 and buckets["5.0"] == 3 and buckets["14400.0"] == 3 and buckets["+Inf"] == 4
    assert histogram.total == pytest.approx(20_006.5)
    cross = dict(latency[("succeeded", "cross-region")].buckets)
    assert cross["600.0"] == 0 and cross["1200.0"] == 1


def test_followup_outcomes_are_counted(data: DataLayer) -> None:
    t = data.telemetry
    t.record_followup("tags", "applied")
    t.record_followup("tags", "applied")
    t.record_followup("share", "failed")
    assert t.followups() == {("tags", "applied"): 2, ("share", "failed"): 1}


def test_queue_backlog_counts_the_priority_lists_too(redis_server, data: DataLayer) -> None:
    client = redis_server.client()
    queue = f"q-{id(data)}"
    lists = Keyspace.broker_queue_lists(queue)
    client.rpush(lists[0], "a", "b")
    client.rpush(lists[2], "c")
    assert data.telemetry.queue_backlog(queue) == 3
