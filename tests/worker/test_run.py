"""The worker and beat command lines, and that they start a worker that knows every task."""

from __future__ import annotations

import sys

from worker.celery_app import app, settings
from worker.queues import ALL_QUEUES, ROUTES
from worker.run import beat_argv, worker_argv


def test_worker_argv_consumes_every_stage_queue_with_events() -> None:
    argv = worker_argv(concurrency=3, beat=True, schedule="/tmp/beat")
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker"]
    assert argv[argv.index("-Q") + 1].split(",") == ALL_QUEUES
    assert argv[argv.index("--concurrency") + 1] == "3" and "-E" in argv
    assert argv[-3:] == ["-B", "-s", "/tmp/beat"]
    assert "-B" not in worker_argv()


def test_beat_argv() -> None:
    assert beat_argv()[:6] == [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "beat"]


def test_every_task_is_registered_on_its_stage_queue_and_maintenance_is_scheduled() -> None:
    app.loader.import_default_modules()  # what a starting worker does: imports the app's ``include``
    for task, queue in ROUTES.items():
        assert task.value in app.tasks
        assert app.conf.task_routes[task.value] == {"queue": queue.value}
    scheduled = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert set(scheduled) == {"replication.reconcile", "replication.expire_batches"}
    assert {entry["options"]["queue"] for entry in scheduled.values()} == {"maintenance"}
    assert scheduled["replication.expire_batches"]["schedule"] == settings.retention_sweep_seconds
