"""The pipeline with REAL Celery worker processes (started by ``worker_argv``), Redis and the simulator over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import celery
import httpx
import pytest
import redis

from cli import services
from cli.processes import ManagedProcess, wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackOptions
from config.settings import AccountSettings, Settings
from tests.support import FAST_RATE_ENV, fast_env, password_url
from worker.data import NewItem, open_data_layer
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.ims.client import ImsClient
from worker.queues import Queue, TaskName

pytestmark = pytest.mark.integration

# Twelve rounds of the 5 slots; the 200-item run through the API is tests/integration/test_pipeline.py's.
ITEMS = 60


@pytest.fixture
def stack(redis_server, start_simulator, tmp_path: Path) -> Iterator[dict]:
    sim = start_simulator(copy_seconds=0.5, image_quota=1000, seed=11)
    db = 1 + uuid.uuid4().int % 15  # its own database: the broker's queue keys are not prefixed
    url = redis_server.db_url(db)
    prefix = f"it{uuid.uuid4().hex[:6]}"
    account = "IMSREP_ACCOUNTS__DEFAULT__"
    env = {
        "IMSREP_REDIS_URL": url,
        "IMSREP_KEY_PREFIX": prefix,
        "IMSREP_DEMO": "true",
        "IMSREP_STATE_DIR": str(tmp_path / "state"),
        **fast_env(),
        "IMSREP_LOG_FORMAT": "json",
        f"{account}REGION": sim.region,
        f"{account}PROJECT_ID": sim.project_id,
        f"{account}IMS_ENDPOINT": sim.url,
        f"{account}KMS_ENDPOINT": sim.url,
        f"{account}IAM_ENDPOINT": sim.url,
        f"{account}ACCESS_KEY": sim.access_key,
        f"{account}SECRET_KEY": sim.secret_key,
        **FAST_RATE_ENV,
    }
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    data = open_data_layer(url, prefix)
    service = services.worker(Settings(), concurrency=4)
    worker = ManagedProcess("worker", service.argv, tmp_path / "worker.log", env={**env, **service.env}, cwd=tmp_path)
    worker.start()
    try:
        # Ready when its heartbeat is in <prefix>:workers (what the API's /readyz reads).
        wait_until(lambda: data.telemetry.workers_seen(since=0) > 0, 60, "the worker's heartbeat")
        yield {"sim": sim, "url": url, "data": data, "worker": worker}
    finally:
        worker.stop(timeout=DISCARD_STOP_GRACE)
        client.flushdb()


def _image_id(sim, name: str) -> str:
    account = AccountSettings(
        region=sim.region, project_id=sim.project_id, ims_endpoint=sim.url, kms_endpoint=sim.url,
        iam_endpoint=sim.url, access_key=sim.access_key, secret_key=sim.secret_key,
    )  # fmt: skip
    with ImsClient(account, connect_timeout=5, read_timeout=10) as client:
        return client.list_images(name=name)[0].id


def test_sixty_items_through_real_workers_keep_five_slots(stack) -> None:
    sim, data = stack["sim"], stack["data"]
    store = data.records
    source = _image_id(sim, "debian-12-base")
    batch = store.create_batch([NewItem(ItemSpec(image_id=source, name=f"bulk {i}"), "default") for i in range(ITEMS)])
    sender = celery.Celery("test-sender", broker=stack["url"], set_as_current=False)
    sender.send_task(TaskName.ADMIT.value, kwargs={"batch_id": batch.batch_id}, queue=Queue.ADMIT.value)

    def done() -> bool:
        assert stack["worker"].running(), stack["worker"].log_tail()
        return store.batch(batch.batch_id).done

    wait_until(done, 240, "every item to reach a terminal state", interval=0.5)
    summary = store.batch(batch.batch_id)
    assert summary.counts[ItemState.SUCCEEDED] == ITEMS, (summary.counts, stack["worker"].log_tail())
    project = httpx.get(f"{sim.url}/_sim/projects").json()["projects"][0]
    assert project["jobs_total"] == ITEMS and project["peak_concurrent_jobs"] <= 5
    outcomes = data.telemetry.ims_outcomes()
    assert not any(outcome == "IMG.0060" for _, outcome in outcomes), outcomes
    stats = httpx.get(f"{sim.url}/_sim/stats").json()["by_endpoint"]
    copy_statuses = {status for name, counts in stats.items() if "copy" in name for status in counts}
    assert copy_statuses == {"200"}, stats
    assert data.slots.in_use("default") == 0
    # IMSREP_LOG_FORMAT=json: a JSON object a line, each step's record naming its task, item and batch.
    entries = [json.loads(line) for line in stack["worker"].log_path.read_text().splitlines() if line.startswith("{")]
    done = [e for e in entries if e["message"].endswith(" succeeded") and e["logger"].startswith("worker.")]
    assert len(done) == ITEMS, entries[-5:]
    assert all(e["task_name"].startswith("replication.") and e["task_id"] and e["item_id"] for e in done)
    assert {e["item_id"] for e in done} == set(batch.item_ids)


def test_a_worker_started_while_redis_refuses_writes_waits_quietly_and_starts(tmp_path: Path) -> None:
    with LocalStack(
        StackOptions(state_dir=tmp_path, env={"IMSREP_KEY_PREFIX": "full"}, stop_grace=DISCARD_STOP_GRACE)
    ) as stack:
        stack.start_redis()
        url = password_url(stack)
        raw = redis.Redis.from_url(url)
        raw.config_set("maxmemory", 1)  # full from the start: every write, and every command in a MULTI, refused
        worker = stack.start_worker()
        wait_until(lambda: "Redis refuses writes" in worker.log_tail(200), 60, "the worker to meet the refusal")
        assert worker.running()
        raw.config_set("maxmemory", 0)
        data = open_data_layer(url, "full")
        wait_until(lambda: data.telemetry.workers_seen(since=0) > 0, 60, "the worker's heartbeat")
        log = worker.log_path.read_text()
        # It waited instead of restarting its consumer several times a second: one line for the episode.
        assert log.count("Redis refuses writes") == 1 and "Traceback" not in log and "CRITICAL" not in log, log
