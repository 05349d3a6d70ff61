"""/metrics: Prometheus text read from Redis at scrape time."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ended_run, walk_to
from worker.data.accounts import CircuitPolicy
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
    data.slots.restore("default", ["item-a", "item-b"], time.time())
    data.slots.restore("default:cross-region", ["item-c"], time.time())
    data.telemetry.heartbeat("w1@host", time.time())

    m = _scrape(api)
    assert m[("imsrep_redis_up", ())] == 1
    assert m[("imsrep_items", (("state", "accepted"),))] == 2
    assert m[("imsrep_items", (("state", "validating"),))] == 1
    assert m[("imsrep_items", (("state", "succeeded"),))] == 0
    local, cross = (("account", "default"), ("mode", "in-region")), (("account", "default"), ("mode", "cross-region"))
    assert m[("imsrep_slots_in_use", local)] == 2 and m[("imsrep_slots_in_use", cross)] == 1
    assert m[("imsrep_slots_limit", local)] == 5 and m[("imsrep_slots_limit", cross)] == 5
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
    data = api.data()
    telemetry = data.telemetry
    telemetry.record_retry("replication.poll", "transient")
    telemetry.record_retry("replication.poll", "transient")
    telemetry.record_retry("replication.submit", "rate_limited")
    for seconds in (0.5, 40.0, 50.0, 90_000.0):
        telemetry.record_latency("succeeded", seconds)
    telemetry.record_latency("rejected", 2.0)
    telemetry.record_latency("succeeded", 800.0, "cross-region")
    telemetry.record_followup("share", "failed")
    data.flush()  # as the end of a worker's task does

    m = _scrape(api)
    assert m[("imsrep_retries_total", (("cause", "transient"), ("task", "replication.poll")))] == 2
    assert m[("imsrep_retries_total", (("cause", "rate_limited"), ("task", "replication.submit")))] == 1
    bucket = "imsrep_item_latency_seconds_bucket"

    def ok(le: str, state: str = "succeeded", mode: str = "in-region") -> tuple[str, tuple]:
        return (bucket, (("le", le), ("mode", mode), ("state", state)))

    assert m[ok("1.0")] == 1
    assert m[ok("30.0")] == 1
    assert m[ok("60.0")] == 3  # cumulative
    assert m[ok("14400.0")] == 3
    assert m[ok("+Inf")] == 4
    local = (("mode", "in-region"), ("state", "succeeded"))
    assert m[("imsrep_item_latency_seconds_count", local)] == 4
    assert m[("imsrep_item_latency_seconds_sum", local)] == 90_090.5
    assert m[ok("5.0", "rejected")] == 1
    assert m[ok("600.0", mode="cross-region")] == 0 and m[ok("1200.0", mode="cross-region")] == 1
    assert m[("imsrep_followups_total", (("kind", "share"), ("outcome", "failed")))] == 1


def test_items_a_user_cancels_are_timed_like_every_other_ending(api, client) -> None:
    # The API moves them itself, with no worker's verdict to time them: the histogram still counts each one once.
    cancelled = (("mode", "in-region"), ("state", "cancelled"))
    before = _scrape(api)
    body = client.post("/v1/batches", json={"items": [{"image_id": str(uuid.uuid4())} for _ in range(3)]}).json()
    walk_to(api.data().records, body["item_ids"][0], ItemState.VALIDATING)
    assert client.post(f"/v1/batches/{body['batch_id']}/cancel").json()["cancelled"] == 3
    after = _scrape(api)
    count, total = "imsrep_item_latency_seconds_count", "imsrep_item_latency_seconds_sum"
    assert after[(count, cancelled)] == before.get((count, cancelled), 0) + 3
    assert after[(total, cancelled)] > before.get((total, cancelled), 0)
    assert after[("imsrep_items", (("state", "cancelled"),))] == before[("imsrep_items", (("state", "cancelled"),))] + 3


def test_metrics_export_each_policys_runs_outcome_copies_and_lag(api, client) -> None:
    body = {"name": "watched", "selector": {}, "template": {"name": "{name}-c"}, "schedule": {"every": 3600}}
    answer = client.post("/v1/policies", json=body)
    assert answer.status_code == 201, answer.text
    policy = (("policy", answer.json()["policy_id"]),)
    m = _scrape(api)
    assert m[("imsrep_policy_runs_total", policy)] == 0 and m[("imsrep_policy_copies_made_total", policy)] == 0
    assert ("imsrep_policy_lag_seconds", policy) not in m  # no run has looked yet

    ended_run(api.data(), policy[0][1], [ItemState.SUCCEEDED, ItemState.SUCCEEDED], oldest_age=30)
    m = _scrape(api)
    assert m[("imsrep_policy_runs_total", policy)] == 1 and m[("imsrep_policy_copies_made_total", policy)] == 2
    assert m[("imsrep_policy_copies_retired_total", policy)] == 0
    assert m[("imsrep_policy_receiver_copies_total", policy)] == 0
    assert m[("imsrep_policy_lag_seconds", policy)] == pytest.approx(30)
    name = "imsrep_policy_last_run_outcome"  # a state set: one sample per outcome, labelled with the metric's name
    outcome = {s: m[(name, ((name, s), *policy))] for s in ("succeeded", "failed", "running", "skipped", "deleted")}
    assert outcome == {"succeeded": 1, "failed": 0, "running": 0, "skipped": 0, "deleted": 0}
    assert time.time() - 60 < m[("imsrep_policy_last_run_timestamp_seconds", policy)] <= time.time()
    assert m[("imsrep_policy_next_run_timestamp_seconds", policy)] > time.time()


def test_metrics_hold_no_state_in_the_api(api) -> None:
    r = api.redis()
    r.delete(f"{api.prefix}:slots:default")
    assert _scrape(api)[("imsrep_slots_in_use", (("account", "default"), ("mode", "in-region")))] == 0


def test_an_accounts_outage_shows_with_the_mode_of_each_of_its_pools(api) -> None:
    # One circuit per account holds both its pools: each mode's series says so, next to that mode's slots and line.
    local, cross = (("account", "default"), ("mode", "in-region")), (("account", "default"), ("mode", "cross-region"))
    before = _scrape(api)
    assert before[("imsrep_account_circuit_open", local)] == before[("imsrep_account_circuit_open", cross)] == 0
    opened = api.data().accounts.record_outcome("default", "copy", "503", "transient", CircuitPolicy(1, 60.0, 60.0))
    assert opened == "opened"
    after = _scrape(api)
    assert after[("imsrep_account_circuit_open", local)] == after[("imsrep_account_circuit_open", cross)] == 1
    assert ("imsrep_account_circuit_open", (("account", "default"),)) not in after
