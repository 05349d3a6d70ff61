"""Flower as the queue-health dashboard, seen through headless Chromium while a batch runs.

Screenshots go to ``$IMSREP_SCREENSHOT_DIR`` when set (``docs/screenshots`` to refresh the README's), else to the
test's temporary directory.
"""

from __future__ import annotations

import ast
import glob
import os
import re
from pathlib import Path

import httpx
import pytest

from cli.processes import wait_until
from worker.data import Keyspace
from worker.queues import ALL_QUEUES, TaskName

# The default account's lines for a slot (in-region and cross-region copies), shown as queues.
WAITING_LINES = [Keyspace().waiting_queue(pool) for pool in ("default", "default:cross-region")]

pytestmark = pytest.mark.integration

STEP_TASKS = [TaskName.VALIDATE.value, TaskName.SUBMIT.value, TaskName.POLL.value]
# IDs, counters, a region; a poll sent again alone after its worker died says so (worker/tasks.py).
TASK_ARGUMENTS = {"item_id", "image_id", "seq", "first_look", "batch_id", "cursor", "to_region", "redelivered"}


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("IMSREP_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


# The test's own copies: three rounds of the account's 5 slots at COPY_SECONDS each keep copies in flight for
# longer than the browser needs to look, whatever ran before it.
OWN_COPIES = 15


def _replicating(ops_stack, batch_id: str) -> bool:
    return ops_stack.batch(batch_id)["counts"].get("replicating", 0) > 0


def _waiting_shown(dom: str, line: str) -> int:
    """The Messages column of ``line``'s row on Flower's Broker page (-1 when the row is missing)."""
    row = re.search(rf"<td>{re.escape(line)}</td>\s*<td[^>]*>(\d+)</td>", dom)
    return int(row.group(1)) if row else -1


def test_flower_pages_show_this_systems_workers_tasks_and_queues(ops_stack, chromium, shots: Path) -> None:
    image = ops_stack.image_ids["debian-12-base"]
    batch_id = ops_stack.submit([{"image_id": image, "name": f"ops-browser-{i}"} for i in range(OWN_COPIES)])
    wait_until(lambda: _replicating(ops_stack, batch_id), 60, "an item replicating")

    # The items waiting for a slot are no message, yet the Broker page lists them as the account's waiting line.
    broker = chromium.dom_until(
        ops_stack.flower_page("/broker"),
        lambda dom: all(f">{q}<" in dom for q in ALL_QUEUES) and _waiting_shown(dom, WAITING_LINES[0]) > 0,
        "every stage queue, and the account's waiting line holding items",
    )
    assert ">celery<" not in broker  # only our stage queues, not Celery's default

    workers = chromium.dom_until(
        ops_stack.flower_page("/workers"), lambda dom: "worker@" in dom and "Online" in dom, "worker online in Flower"
    )
    assert "worker@" in workers
    # The page shows the newest tasks only (its REST API has them all: see the next test); while copies run,
    # those are polls waiting on their countdown (RECEIVED) or running (STARTED).
    chromium.dom_until(
        ops_stack.flower_page("/tasks"),
        lambda dom: TaskName.POLL.value in dom and ("RECEIVED" in dom or "STARTED" in dom),
        "polls in flight in Flower's task list",
    )
    assert _replicating(ops_stack, batch_id), "the batch finished before the browser looked; add OWN_COPIES"

    for page in ("tasks", "broker"):
        png = chromium.screenshot(ops_stack.flower_page(f"/{page}"), shots / f"flower-{page}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000  # a page, not a blank


def test_flower_task_arguments_are_ids_never_secrets(ops_stack) -> None:
    tasks = ops_stack.flower("/api/tasks", params={"limit": 1000}).json()
    names = {task["name"] for task in tasks.values()}
    # Validation of a batch of 10 or more runs inside its admit step (from listing pages); a lone item's, or one
    # whose listing met an error, is a task of its own, so replication.validate may or may not be among them.
    always = {TaskName.ADMIT.value, TaskName.SUBMIT.value, TaskName.POLL.value}
    assert always <= names and names <= {t.value for t in TaskName}
    bundles = 0
    for task in tasks.values():
        kwargs = ast.literal_eval(task["kwargs"])  # Flower shows them as a Python repr
        # A submit or poll may carry several items (worker/bundles.py): each with the same arguments.
        carried = kwargs.pop("bundle", None) or [kwargs]
        bundles += len(carried) > 1
        for item in carried:
            assert set(item) <= TASK_ARGUMENTS, task
            if task["name"] in STEP_TASKS:
                assert {"item_id", "image_id"} <= set(item), task
        assert not kwargs or carried == [kwargs], task  # nothing beside a bundle
    assert bundles  # a grant's submits went as one message


def test_flower_needs_its_password_except_for_metrics_and_healthcheck(ops_stack) -> None:
    url = ops_stack.info.flower_url
    assert httpx.URL(url).host == "127.0.0.1"  # /metrics is open, so Flower listens on loopback only
    for path in ("/workers", "/tasks", "/broker", "/api/tasks", "/api/workers", "/api/queues/length"):
        assert httpx.get(f"{url}{path}").status_code == 401, path
        wrong = httpx.get(f"{url}{path}", auth=(ops_stack.info.flower_user, "not-the-password"))
        assert wrong.status_code == 401, path
    assert httpx.get(f"{url}/healthcheck").status_code == 200
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200 and 'task="replication.submit"' in metrics.text


def test_flower_broker_api_lists_every_stage_queue_with_its_length(ops_stack) -> None:
    queues = ops_stack.flower("/api/queues/length").json()["active_queues"]
    assert sorted(q["name"] for q in queues) == sorted([*ALL_QUEUES, *WAITING_LINES])
    assert all(isinstance(q["messages"], int) for q in queues)


def test_flower_saves_its_state_while_running(ops_stack) -> None:
    # state_save_interval is 10 s: the shelve file appears without waiting for a clean shutdown.
    db = Path(ops_stack.info.state_dir) / "flower.db"
    wait_until(lambda: glob.glob(f"{db}*"), 20, "Flower's state file")
