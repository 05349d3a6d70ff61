"""/metrics: Prometheus text read from Redis at scrape time."""

from __future__ import annotations

import time
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import walk_to
from worker.domain.states import ItemState


def _scrape(api) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"{api.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_report_items_slots_queues_and_workers(api, client) -> None:
    body = client.post("/v1/batches", json={"items": [{"image_id": str(uuid.uuid4())} for _ in range(3)]}).json()
    data = api.data()
    walk_to(data.records, body["item_ids"][0], ItemState.VALIDATING)
    data.slots.restore("default", "item-a", time.time())
    data.slots.restore("default", "item-b", time.time())
    data.telemetry.heartbeat("w1@host", time.time())

    m = _scrape(api)
    assert m[("imsrep_redis_up", ())] == 1
    assert m[("imsrep_items", (("state", "accepted"),))] == 2
    assert m[("imsrep_items", (("state", "validating"),))] == 1
    assert m[("imsrep_items", (("state", "succeeded"),))] == 0
    assert m[("imsrep_slots_in_use", (("account", "default"),))] == 2
    assert m[("imsrep_slots_limit", (("account", "default"),))] == 5
    assert m[("imsrep_queue_backlog", (("queue", "admit"),))] == api.redis().llen("admit") >= 1
    for queue in ("validate", "submit", "poll", "maintenance"):
        assert ("imsrep_queue_backlog", (("queue", queue),)) in m
    assert m[("imsrep_workers_seen", ())] == 1
    assert any(name == "process_cpu_seconds_total" for name, _ in m)


def test_metrics_export_the_workers_counters(api) -> None:
    telemetry = api.data().telemetry
    for outcome in ("200", "200", "200", "200", "IMG.0060"):
        telemetry.record_ims_outcome("copy", outcome)
    telemetry.record_repairs({"submit_resent": 2})
    m = _scrape(api)
    assert m[("imsrep_ims_responses_total", (("endpoint", "copy"), ("outcome", "200")))] == 4
    assert m[("imsrep_ims_responses_total", (("endpoint", "copy"), ("outcome", "IMG.0060")))] == 1
    assert m[("imsrep_reconciler_repairs_total", (("kind", "submit_resent"),))] == 2


def test_metrics_export_retries_and_the_latency_histogram(api) -> None:
    # Recorded by the workers' own verbs (worker/data/telemetry.py), exported by the API's collector.
    telemetry = api.data().telemetry
    telemetry.record_retry("replication.poll", "transient")
    telemetry.record_retry("replication.poll", "transient")
    telemetry.record_retry("replication.submit", "rate_limited")
    for seconds in (0.5, 40.0, 50.0, 90_000.0):
        telemetry.record_latency("succeeded", seconds)
    telemetry.record_latency("rejected", 2.0)

    m = _scrape(api)
    assert m[("imsrep_retries_total", (("cause", "transient"), ("task", "replication.poll")))] == 2
    assert m[("imsrep_retries_total", (("cause", "rate_limited"), ("task", "replication.submit")))] == 1
    bucket = "imsrep_item_latency_seconds_bucket"
    assert m[(bucket, (("le", "1.0"), ("state", "succeeded")))] == 1
    assert m[(bucket, (("le", "30.0"), ("state", "succeeded")))] == 1
    assert m[(bucket, (("le", "60.0"), ("state", "succeeded")))] == 3  # cumulative
    assert m[(bucket, (("le", "14400.0"), ("state", "succeeded")))] == 3
    assert m[(bucket, (("le", "+Inf"), ("state", "succeeded")))] == 4
    assert m[("imsrep_item_latency_seconds_count", (("state", "succeeded"),))] == 4
    assert m[("imsrep_item_latency_seconds_sum", (("state", "succeeded"),))] == 90_090.5
    assert m[(bucket, (("le", "5.0"), ("state", "rejected")))] == 1


def test_metrics_hold_no_state_in_the_api(api) -> None:
    r = api.redis()
    r.delete(f"{api.prefix}:slots:default")
    assert _scrape(api)[("imsrep_slots_in_use", (("account", "default"),))] == 0
