"""Celery beat's scheduler for ims-replicator: one beat sends the schedule cluster-wide, every beat says it is alive,
and Redis refusing writes is ridden out quietly.

- **Once cluster-wide**: a beat sends the schedule (the reconciler, the retention sweep) only while it holds the
  beat lock (``P:lock:beat``, renewed every tick, expiring ``LOCK_SECONDS`` after the last renewal). Run one beat
  per cluster, or one on each of two hosts: the second stands by and takes over within ``LOCK_SECONDS`` of the
  first one's death. (A second sender would be harmless anyway: the reconciler takes a lock of its own.)
- **A heartbeat**: every beat's tick writes the time to ``P:beats`` (at least every ``beat_max_loop_interval``),
  which the API's ``/readyz`` and ``imsrep_beats_seen`` read: a dead beat is noticed.
- **Redis refusing writes** (memory limit, failover, unreachable): a schedule entry that cannot be sent is logged
  once per episode (``worker.pressure``), not with a traceback every interval, and beat carries on by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

import redis
from celery.beat import PersistentScheduler
from redis.exceptions import LockError

from config.settings import get_settings
from worker.data import DataLayer, open_data_layer, redis_target, unavailable
from worker.pressure import REFUSALS

log = logging.getLogger("worker.beat")

LOCK_SECONDS = 20.0
HEARTBEAT_EVERY = 1.0  # a tick may come many times a second (after each entry sent): write at most this often
# While Redis refuses (a failover, its memory limit) beat asks again this often, so the schedule (the reconciler
# above all) resumes within a second of Redis taking writes, not after a whole tick.
REFUSED_RETRY = 1.0


class Scheduler(PersistentScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self._data: DataLayer = open_data_layer(redis_target(settings), settings.key_prefix)
        # Unique per scheduler: it names the heartbeat and is the lock's token.
        self._name = f"beat@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lock = self._data.control.beat_lock(LOCK_SECONDS)
        self._leading = False
        self._last_heartbeat = 0.0
        REFUSALS.configure("beat", self._data.telemetry.record_refusal)
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.time()
        try:
            if now - self._last_heartbeat >= HEARTBEAT_EVERY:
                self._data.telemetry.beat_heartbeat(self._name, now)
                self._last_heartbeat = now
            self._lead()
        except redis.RedisError as exc:
            if not unavailable(exc):
                raise
            # Still the sender if the lock outlives the episode (renewed on the next tick), else another beat is.
            REFUSALS.refused("no heartbeat, schedule held", exc)
            return min(self.max_interval, REFUSED_RETRY)
        REFUSALS.accepted()
        if not self._leading:
            return self.max_interval
        return super().tick(*args, **kwargs)

    def _lead(self) -> None:
        """Renew the beat lock if this beat holds it, else try to take it."""
        was_leading = self._leading
        if self._leading:
            try:
                self._lock.reacquire()
            except LockError:
                self._leading = False
        if not self._leading:
            self._leading = bool(self._lock.acquire(blocking=False, token=self._name))
        if self._leading != was_leading:
            log.info("%s %s", self._name, "sends the schedule" if self._leading else "stands by (another beat sends)")

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:  # noqa: BLE001 - as Celery's own apply_entry: a bad entry must not stop beat
            cause = exc.__cause__ or exc.__context__ or exc
            if unavailable(cause):
                REFUSALS.refused(f"{entry.task} not sent; the next interval sends it", cause)
                return
            log.error("%s could not be sent: %s", entry.task, exc, exc_info=True)

    def close(self) -> None:
        super().close()
        try:
            if self._leading:
                self._lock.release()
            self._data.telemetry.forget_beat(self._name)
        except (redis.RedisError, LockError):
            pass
        self._data.close()
