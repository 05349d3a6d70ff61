"""The one place the worker and beat command lines live: ``imsrep up``, docker compose and the tests use these."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from worker.queues import ALL_QUEUES

APP = "worker.celery_app:app"

# The worker's environment: SIGTERM (docker stop, systemd, imsrep up) starts a soft shutdown that lets running
# tasks finish for ``worker_soft_shutdown_timeout`` seconds and then hands the rest back to Redis at once, instead of
# a warm shutdown that may outlast the stop's grace period (tasks run up to task_time_limit) and end in a SIGKILL,
# whose messages wait out the visibility timeout. billiard reads it at import, before any of our code, so the
# launcher must set it.
WORKER_ENV = {"REMAP_SIGTERM": "SIGQUIT"}


def worker_argv(
    *,
    concurrency: int = 4,
    queues: Sequence[str] = ALL_QUEUES,
    name: str = "worker@%h",
    beat: bool = False,
    schedule: str | None = None,
    loglevel: str = "INFO",
    python: str = sys.executable,
) -> list[str]:
    """``python -m celery -A worker.celery_app:app worker -Q <queues> --concurrency N -n <name> -E [-B]``.

    ``-E`` sends task events for Flower; ``-B`` embeds beat (the reconciler's schedule) in this worker, which suits
    a single-worker set-up; a cluster runs ``beat_argv`` once instead (a second beat is harmless, not useful).
    ``schedule`` is beat's state file (``-s``; default ``celerybeat-schedule`` in the working directory).
    """
    argv = [
        python, "-m", "celery", "-A", APP, "worker",
        "-Q", ",".join(queues),
        "--concurrency", str(concurrency),
        "-n", name,
        "-E",
        "--loglevel", loglevel,
    ]
    if beat:
        argv.append("-B")
        if schedule:
            argv += ["-s", schedule]
    return argv


def beat_argv(*, loglevel: str = "INFO", python: str = sys.executable) -> list[str]:
    """``python -m celery -A worker.celery_app:app beat``: sends ``replication.reconcile`` every interval."""
    return [python, "-m", "celery", "-A", APP, "beat", "--loglevel", loglevel]
