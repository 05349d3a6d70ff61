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

import socket
import ssl
from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings, is_sentinel_url

# Countdown messages (polls, retries) one worker holds; one per copy in flight. At the limit the worker takes no
# message at all until one is due, submits of freed slots included: at 1,000 was the limit of 200 accounts x 5
# slots, and hand-offs waited for the reconciler (docs/performance.md). A few KB each.
ETA_TASK_LIMIT = 10_000
# kombu's Redis transports with the fixes of worker/broker.py (a restart, a failover or a write refusal must not kill
# the worker): named, not imported, as config imports nothing else of ours.
TRANSPORT = "worker.broker:Transport"
SENTINEL_TRANSPORT = "worker.broker:SentinelTransport"
# Seconds between kombu's checks of its long-lived connections: a BRPOP stuck on a dead master is dropped and made
# again within about brpop_timeout (1 s) + 2 x this.
BROKER_HEALTH_CHECK_INTERVAL = 2
# TCP keepalive of every Redis connection (the data layer's too, worker/data/connection.py): probe an idle connection
# after 5 s, every 2 s, and drop it after 3 unanswered probes, so a connection to a host that vanished (no RST) is
# dropped in about 11 s even when no command is waiting on it.
# A Sentinel that does not answer is skipped at once for the next one: redis-py's default client retries a failed
# connection three times with a backoff of up to 10 s, which made a dead or refusing Sentinel cost half a minute.
SENTINEL_RETRY = Retry(NoBackoff(), 0)
TCP_KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}


def tls_options(ca_file: str | None) -> dict[str, Any]:
    """TLS of every Redis client of ours (the data layer, the broker, Flower's Broker tab): the server's certificate
    and host name checked against ``ca_file`` (None: the system's CAs). kombu would check nothing for a rediss:// URL
    without them."""
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": ca_file, "ssl_check_hostname": True}


def sentinel_tls_options(ca_file: str | None) -> dict[str, Any]:
    """A Sentinel's own connections over TLS (``redis.Redis``'s ``ssl``, which a connection class gives the
    servers'), checked as ``tls_options`` says."""
    return {"ssl": True, **tls_options(ca_file)}


def broker_config(settings: Settings) -> dict[str, Any]:
    """Where the broker is and how to reach it, for every Celery app of ours (worker, beat, the API's enqueuer,
    Flower): the same Redis or Sentinels, passwords and timeouts as the data layer (``worker.data.connection``)."""
    sockets = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
    }
    transport: dict[str, Any] = {
        **sockets,
        "socket_keepalive": True,
        "socket_keepalive_options": TCP_KEEPALIVE,
        "health_check_interval": BROKER_HEALTH_CHECK_INTERVAL,
        "visibility_timeout": settings.visibility_timeout,
        # Sweep for unacked messages of dead workers every 5 s, not kombu's default ~100 s (interval x throttle).
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
        # No message priorities: a queue is one list. (Each pool's waiting line keeps its count in its queue's
        # priority-9 list, which Flower's Broker page adds up and workers never read: worker/data/keyspace.py.)
        "priority_steps": [0],
    }
    ca_file = str(settings.redis_tls_ca_file) if settings.redis_tls_ca_file else None
    tls = tls_options(ca_file) if settings.redis_tls else None
    sentinel = is_sentinel_url(settings.redis_url)
    if sentinel:
        transport["master_name"] = settings.redis_sentinel_master
        sentinel_password = settings.redis_sentinel_password
        transport["sentinel_kwargs"] = {
            **sockets,
            "retry": SENTINEL_RETRY,
            **({"password": sentinel_password.get_secret_value()} if sentinel_password else {}),
            # The Sentinels over TLS too (kombu's broker_use_ssl reaches only the master's connections).
            **(sentinel_tls_options(ca_file) if tls else {}),
        }
    password = settings.redis_password
    return {
        "broker_url": settings.redis_url,
        "broker_transport": SENTINEL_TRANSPORT if sentinel else TRANSPORT,
        # The password travels as a setting of its own, never in a URL that a banner or Flower could show.
        "broker_password": password.get_secret_value() if password else None,
        "broker_transport_options": transport,
        "broker_use_ssl": tls,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = broker_config(settings)
    return {
        **broker,
        "result_backend": None,
        "task_ignore_result": True,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "visibility_timeout": settings.visibility_timeout,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # A broker command Redis refuses (its memory limit, a read-only replica) restarts the consumer rather than
        # ending the worker: it reconnects and carries on once Redis takes writes again (worker/broker.py).
        "broker_channel_error_retry": True,
        # ... and reconnects within 2 s of the broker coming back, not kombu's up to 30 s (worker/consumer.py).
        "worker_consumer": "worker.consumer:Consumer",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # Polls and retries are countdown messages, held in worker memory and not bounded by the prefetch count;
        # past this many the worker takes nothing more (see ETA_TASK_LIMIT).
        "worker_eta_task_limit": ETA_TASK_LIMIT,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": settings.worker_soft_shutdown_seconds,
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
