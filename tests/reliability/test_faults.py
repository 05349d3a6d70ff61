"""Cloud faults and duplicate deliveries: items fail only where IMS failed their job, and nothing is copied twice."""

from __future__ import annotations

import pytest

from cli.processes import wait_until
from worker.domain.states import ItemState
from worker.queues import Queue

pytestmark = pytest.mark.integration

SLOT_LIMIT = 5


def test_simulator_faults_fail_only_the_items_whose_job_failed(cluster, record) -> None:
    # Hangs (5 s) outlast the worker's read timeout (3 s); the simulator carries the request out all the same.
    # 50 items, each with many requests, meet every kind of fault; 10% of their jobs fail (5 expected, none in about
    # 1 run in 200), so that some items have a failed job to tell apart from those whose requests merely failed.
    faults = {"error_rate": 0.1, "throttle_rate": 0.1, "hang_rate": 0.05, "hang_seconds": 5, "fail_rate": 0.1}
    c = cluster(copy_seconds=0.5, env={"IMSREP_RETRY_MAX_ATTEMPTS": "30"})
    sources = c.sources(50)
    c.set_faults(**faults)  # on for the worker's calls only, not for the test's own listings
    item_ids = c.submit(sources)["item_ids"]
    finished = c.wait_terminal(item_ids, timeout=170)
    c.set_faults(error_rate=0, throttle_rate=0, hang_rate=0, fail_rate=0)
    failed_jobs = {job["source_image_id"] for job in c.jobs() if job["status"] == "FAIL"}
    items = c.store().get_items(item_ids)
    failed = {item.image_id for item in items if item.state is ItemState.FAILED}
    stats = c.sim_stats()
    figures = {
        **c.outcome(item_ids, sources),
        "ims_failed_jobs": len(failed_jobs),
        "failed_without_failed_job": len(failed - failed_jobs),
        "failed_job_not_failed": len(failed_jobs - failed),
        "faults_injected": stats["faults"],
    }
    record("cloud faults", "10% 5xx, 10% 429, 5% hangs past the read timeout, 10% failed IMS jobs", figures)
    assert finished and figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stuck"] == 0, figures
    assert failed == failed_jobs, figures
    assert figures["by_state"].get(ItemState.SUCCEEDED.value, 0) + len(failed) == len(item_ids), figures
    assert figures["slots_held_at_end"] == 0 and figures["peak_concurrent_jobs"] <= SLOT_LIMIT, figures
    assert all(stats["faults"].get(kind, 0) > 0 for kind in ("error", "throttle", "hang")), stats


def test_every_message_delivered_twice_at_once_makes_one_copy(cluster, record) -> None:
    """The admit message, and then every submit message (the first five items' submits, in one bundle), sits twice in
    its queue (byte for byte: the same task ID and body); four pool processes take both copies side by side."""
    c = cluster(copy_seconds=1.0, latency=0.3, worker=False)  # latency: the two copies' calls overlap
    sources = c.sources(2 * SLOT_LIMIT)  # five items hold the slots, five wait behind them
    item_ids = c.submit(sources)["item_ids"]
    admits = c.duplicate_queue(Queue.ADMIT.value)
    c.start_worker(queues=[Queue.ADMIT.value, Queue.VALIDATE.value])
    # Validation done: five items hold the slots, their submits wait in the (unconsumed) submit queue.
    wait_until(lambda: c.queued_items(Queue.SUBMIT.value) >= SLOT_LIMIT, 60, "the first submits", interval=0.2)
    c.stop_worker()
    submitted = c.queued_items(Queue.SUBMIT.value)
    submits = c.duplicate_queue(Queue.SUBMIT.value)
    c.start_worker()
    finished = c.wait_terminal(item_ids, timeout=90)
    received = c.received_counts()
    figures = {
        **c.outcome(item_ids, sources),
        "messages_duplicated": len(admits) + len(submits),
        "submits_duplicated": submitted,
        "duplicates_run": sum(1 for task_id in admits + submits if received.get(task_id, 0) >= 2),
        "ims_copy_jobs": c.project()["jobs_total"],
    }
    record("duplicate delivery", "the admit and the first five submit messages each queued twice", figures)
    assert finished and figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stuck"] == 0, figures
    assert figures["duplicates_run"] == figures["messages_duplicated"] >= 2, figures
    assert figures["submits_duplicated"] == SLOT_LIMIT, figures
    assert figures["by_state"] == {ItemState.SUCCEEDED.value: len(item_ids)}, figures
    assert figures["ims_copy_jobs"] == len(item_ids), figures
    assert figures["slots_held_at_end"] == 0 and figures["peak_concurrent_jobs"] <= SLOT_LIMIT, figures
