"""The Celery app: configuration from ``config.get_settings()`` and ``config.celery.celery_config``, one queue per
stage (``worker.queues``), the reconciler on a beat schedule, worker and beat logging (text or JSON, secrets masked,
each record tagged with its task), and the heartbeat the API reads.

Run a worker (the command lives in ``worker.run.worker_argv``)::

    python -m celery -A worker.celery_app:app worker -Q admit,validate,submit,poll,followup,maintenance \
        --concurrency 4 -n worker@%h -E

and beat once per cluster, ``python -m celery -A worker.celery_app:app beat`` (``worker.run.beat_argv``). Several
beats are harmless: the reconciler takes a lock.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from config.celery import celery_config
from config.logging import configure_logging
from config.settings import Settings, SettingsError, get_settings
from worker.data import Keyspace, open_data_layer, redis_target
from worker.domain.pools import pools
from worker.heartbeat import Heartbeat
from worker.logcontext import TaskContext
from worker.pressure import REFUSALS
from worker.queues import Queue
from worker.registry import ROUTES, beat_schedule

BEAT_TICK = 5.0


def create_app(settings: Settings) -> Celery:
    app = Celery("ims-replicator", include=["worker.tasks"], set_as_current=True)
    app.conf.update(celery_config(settings))
    app.conf.update(
        # Beat: one sends the schedule cluster-wide (a lock), each ticks at least every BEAT_TICK seconds so its
        # heartbeat stays fresh (worker/beat.py).
        beat_scheduler="worker.beat:Scheduler",
        beat_max_loop_interval=BEAT_TICK,
        task_routes={task.value: {"queue": queue.value} for task, queue in ROUTES.items()},
        task_default_queue=Queue.ADMIT.value,
        beat_schedule=beat_schedule(settings),
    )
    return app


settings = get_settings()
app = create_app(settings)
_heartbeat: Heartbeat | None = None


@signals.setup_logging.connect
def _logging(**_: Any) -> None:
    # Connecting this signal stops Celery from installing its own handlers: ours redacts every secret.
    configure_logging(
        settings.log_level, settings.secret_values(), log_format=settings.log_format, context=TaskContext()
    )


def telemetry() -> Any:
    return open_data_layer(redis_target(settings), settings.key_prefix).telemetry


@signals.celeryd_init.connect
def _require_credentials(**_: Any) -> None:
    # A worker (not beat, not Flower, which import this app too) calls the cloud: it needs every account's
    # credentials. SystemExit, because Celery logs and ignores a signal handler's ordinary exceptions.
    try:
        settings.require_credentials()
    except SettingsError as exc:
        raise SystemExit(f"worker: {exc}") from None


@signals.worker_init.connect
def _count_refusals(**_: Any) -> None:
    # Episodes of Redis refusing writes (worker/pressure.py), counted once each ends; pool processes inherit this.
    REFUSALS.configure("worker", lambda process, seconds: telemetry().record_refusal(process, seconds))


@signals.celeryd_after_setup.connect
def _show_waiting_lines(instance: Any, **_: Any) -> None:
    # Flower's Broker page lists the queues workers consume; each pool's waiting line is a queue of its own (never
    # holding a message) whose length is the number of its waiting items (worker/data/keyspace.py).
    keys = Keyspace(settings.key_prefix)
    for pool in pools(settings):
        instance.app.amqp.queues.select_add(keys.waiting_queue(pool.name))


@signals.worker_ready.connect
def _start_heartbeat(sender: Any, **_: Any) -> None:
    global _heartbeat
    _heartbeat = Heartbeat(telemetry(), sender.hostname).start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
