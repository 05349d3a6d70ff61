"""The worker and beat command lines, from the settings: ``imsrep up`` and docker compose run these (through
``cli.services``), and so do the tests."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from config.settings import Settings
from worker.queues import ALL_QUEUES

APP = "worker.celery_app:app"

# The worker's environment: SIGTERM (docker stop, systemd, imsrep up) starts a soft shutdown that lets running
# tasks finish for ``worker_soft_shutdown_timeout`` seconds and then hands the rest back to Redis at once, instead of
# a warm shutdown that may outlast the stop's grace period (tasks run up to task_time_limit) and end in a SIGKILL,
# whose messages wait out the visibility timeout. billiard reads it at import, before any of our code, so the
# launcher must set it.
WORKER_ENV = {"REMAP_SIGTERM": "SIGQUIT"}


def worker_argv(
    settings: Settings,
    *,
    node: str = "worker@%h",
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    python: str = sys.executable,
) -> list[str]:
    """``python -m celery -A worker.celery_app:app worker -Q <queues> --concurrency N -n <node> -E``.

    ``-E`` sends task events for Flower. ``--without-mingle``: no waiting a second for neighbours at start and at
    every reconnect (mingling shares revoked task IDs, and nothing here revokes tasks). ``concurrency`` defaults to
    ``IMSREP_WORKER_CONCURRENCY``. No log level: the process reads ``IMSREP_LOG_LEVEL`` and ``IMSREP_LOG_FORMAT``
    itself (``worker.celery_app``), as Celery's own logging set-up gives way to ours. Beat runs as a process of its
    own (``beat_argv``), once per cluster.
    """
    return [
        python, "-m", "celery", "-A", APP, "worker",
        "-Q", ",".join(queues or ALL_QUEUES),
        "--concurrency", str(concurrency or settings.worker_concurrency),
        "-n", node,
        "-E",
        "--without-mingle",
    ]  # fmt: skip


def beat_argv(settings: Settings, *, python: str = sys.executable) -> list[str]:
    """``python -m celery -A worker.celery_app:app beat``: sends ``replication.reconcile`` every interval; its
    schedule file lives in the state directory, not the working directory."""
    schedule = settings.state_dir / "celerybeat-schedule"
    return [python, "-m", "celery", "-A", APP, "beat", "-s", str(schedule)]
