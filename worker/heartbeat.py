"""The worker heartbeat the API's ``/readyz`` and ``/metrics`` read.

Redis key (``P`` is the key prefix)::

    P:workers   zset  worker hostname -> time of its last heartbeat (every ``INTERVAL`` seconds)

A daemon thread in the worker's main process, started when the worker is ready and stopped at shutdown. Entries
silent for a day are pruned so the set does not grow with every hostname ever seen.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis

log = logging.getLogger("worker.heartbeat")

INTERVAL = 10.0
FORGET_AFTER = 86_400.0


class Heartbeat:
    def __init__(self, client: redis.Redis, prefix: str, hostname: str, interval: float = INTERVAL) -> None:
        self.redis = client
        self.key = f"{prefix}:workers"
        self.hostname = hostname
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.key, {self.hostname: now})
        pipe.zremrangebyscore(self.key, "-inf", now - FORGET_AFTER)
        pipe.execute()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except redis.RedisError as exc:  # Redis away for a moment: /readyz will say so; keep trying
                log.warning("heartbeat not written: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="imsrep-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(redis.RedisError):
            self.redis.zrem(self.key, self.hostname)  # a clean stop is not a worker that went silent
