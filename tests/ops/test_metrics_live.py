"""The API's /metrics against real processes: a worker recording, Redis holding, the API exporting."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.processes import wait_until
from worker.domain.states import TERMINAL, ItemState
from worker.queues import ALL_QUEUES

pytestmark = pytest.mark.integration


def _scrape(ops_stack) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"{ops_stack.info.api_url}/metrics")  # no token: /metrics is open
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _items(m: dict, state: ItemState) -> float:
    return m[("imsrep_items", (("state", state.value),))]


def test_metrics_follow_a_running_batch_to_its_end(ops_stack) -> None:
    image = ops_stack.image_ids["centos-7-app"]
    batch_id = ops_stack.submit([{"image_id": image, "name": f"ops-metrics-{i}"} for i in range(3)])
    seen: dict = {}

    def copying() -> bool:
        seen.update(_scrape(ops_stack))
        return _items(seen, ItemState.REPLICATING) > 0

    wait_until(copying, 60, "an item replicating, in /metrics")
    slots = seen[("imsrep_slots_in_use", (("account", "default"), ("mode", "in-region")))]
    assert 1 <= slots <= seen[("imsrep_slots_limit", (("account", "default"), ("mode", "in-region")))] == 5
    assert seen[("imsrep_workers_seen", ())] >= 1
    for queue in ALL_QUEUES:
        assert ("imsrep_queue_backlog", (("queue", queue),)) in seen

    # Every batch of the stack done (the other tests' too), so that no slot may be held at the end.
    running = lambda: ops_stack.api.get("/v1/batches", params={"state": "running"}).json()["batches"]  # noqa: E731
    wait_until(lambda: not running(), 180, "every batch done")
    assert ops_stack.batch(batch_id)["done"]
    m = _scrape(ops_stack)
    local = ("mode", "in-region")

    def timed(state: str) -> float:  # every mode: in-region and cross-region copies
        modes = (("mode", mode) for mode in ("in-region", "cross-region"))
        return sum(m.get(("imsrep_item_latency_seconds_count", (mode, ("state", state))), 0) for mode in modes)

    counted = {s.value: timed(s.value) for s in TERMINAL}
    assert counted == {s.value: _items(m, s) for s in TERMINAL}  # every item timed once, by its terminal state
    succeeded_inf = m[("imsrep_item_latency_seconds_bucket", (("le", "+Inf"), local, ("state", "succeeded")))]
    assert succeeded_inf == m[("imsrep_item_latency_seconds_count", (local, ("state", "succeeded")))] >= 3
    assert m[("imsrep_item_latency_seconds_sum", (local, ("state", "succeeded")))] > 0
    assert m[("imsrep_ims_responses_total", (("endpoint", "copy"), ("outcome", "200")))] >= 3
    # The simulator fails 15% of calls with a 5xx: the workers reschedule those and count them.
    transient = sum(
        v for (name, labels), v in m.items() if name == "imsrep_retries_total" and ("cause", "transient") in labels
    )
    assert transient > 0
    assert m[("imsrep_slots_in_use", (("account", "default"), ("mode", "in-region")))] == 0
