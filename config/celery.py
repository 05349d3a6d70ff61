"""Celery configuration derived from the settings: at-least-once delivery over Redis with idempotent steps.

Why each knob is set is in ``docs/reliability.md``; in short: late acks and reject-on-worker-lost so a crash
redelivers (the tasks' poison guard caps redeliveries), prefetch 1 so a busy process hoards nothing, a cap on the
countdown (ETA) messages one worker holds in memory, a visibility timeout longer than any countdown plus the longest
task (set in all three places Celery reads it; ``Settings`` refuses a shorter one), running tasks cancelled when the
broker connection drops (the broker redelivers them), a soft shutdown that hands unacked messages back, soft and
hard time limits, and task events for Flower. Soft shutdown on SIGTERM also needs ``REMAP_SIGTERM=SIGQUIT`` in the
worker's environment (read by billiard before any app code runs: ``worker.run.WORKER_ENV``).
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings

ETA_TASK_LIMIT = 1000


def celery_config(settings: Settings) -> dict[str, Any]:
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        # Sweep for unacked messages of dead workers every 5 s, not kombu's default ~100 s (interval x throttle).
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
    }
    return {
        "broker_url": settings.redis_url,
        "result_backend": None,
        "task_ignore_result": True,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "visibility_timeout": settings.visibility_timeout,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # Polls and retries are countdown messages, held in worker memory and not bounded by the prefetch count;
        # past this many the worker leaves the rest in Redis for other workers.
        "worker_eta_task_limit": ETA_TASK_LIMIT,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 10.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
    }
