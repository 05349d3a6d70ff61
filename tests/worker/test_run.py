"""The worker and beat command lines, and that they start a worker that knows every task."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config.settings import Settings
from worker.celery_app import app, settings
from worker.queues import ALL_QUEUES
from worker.registry import ROUTES
from worker.run import WORKER_ENV, beat_argv, worker_argv


def test_worker_argv_consumes_every_stage_queue_with_events_at_the_configured_concurrency() -> None:
    argv = worker_argv(Settings(worker_concurrency=3))
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker"]
    assert argv[argv.index("-Q") + 1].split(",") == ALL_QUEUES
    assert argv[argv.index("--concurrency") + 1] == "3" and "-E" in argv
    assert argv[argv.index("-n") + 1] == "worker@%h"
    mine = worker_argv(Settings(), node="w2@%h", queues=["poll"], concurrency=2, python="python")
    assert mine[0] == "python" and mine[mine.index("-Q") + 1] == "poll" and mine[mine.index("-n") + 1] == "w2@%h"
    assert mine[mine.index("--concurrency") + 1] == "2"


def test_beat_argv_keeps_its_schedule_in_the_state_directory() -> None:
    argv = beat_argv(Settings(state_dir=Path("/srv/imsrep")))
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "beat"]
    assert argv[argv.index("-s") + 1] == "/srv/imsrep/celerybeat-schedule"


def test_every_task_is_registered_on_its_stage_queue_and_maintenance_is_scheduled() -> None:
    app.loader.import_default_modules()  # what a starting worker does: imports the app's ``include``
    for task, queue in ROUTES.items():
        assert task.value in app.tasks
        assert app.conf.task_routes[task.value] == {"queue": queue.value}
    scheduled = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert set(scheduled) == {"replication.reconcile", "replication.expire_batches", "replication.start_runs"}
    assert {entry["options"]["queue"] for entry in scheduled.values()} == {"maintenance"}
    assert scheduled["replication.expire_batches"]["schedule"] == settings.retention_sweep_seconds


def test_a_worker_refuses_to_start_without_an_accounts_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMSREP_")}
    env |= {"IMSREP_ACCOUNTS__PROD__PROJECT_ID": "f" * 32, "IMSREP_ACCOUNTS__PROD__REGION": "cn-south-1"}
    # Redis is never reached: the check comes first (a worker that cannot sign must not take work).
    env |= {"IMSREP_REDIS_URL": "redis://127.0.0.1:1/0", "IMSREP_REDIS_ALLOW_NO_PASSWORD": "true", **WORKER_ENV}
    done = subprocess.run(
        worker_argv(Settings(), concurrency=1), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert "worker: invalid settings: account 'prod' has no credentials" in message
    for variable in ("ACCESS_KEY", "SECRET_KEY", "SECURITY_TOKEN", "IAM_USER", "CREDENTIALS_SOURCE=metadata"):
        assert f"IMSREP_ACCOUNTS__PROD__{variable}" in message
