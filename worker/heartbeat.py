"""The worker heartbeat the API's ``/readyz`` and ``/metrics`` read.

A daemon thread in the worker's main process, started when the worker is ready and stopped at shutdown, writes
the worker's hostname and the time every ``INTERVAL`` seconds (``worker.data.telemetry``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis

from worker.data import Telemetry, unavailable
from worker.pressure import REFUSALS

log = logging.getLogger("worker.heartbeat")

INTERVAL = 10.0


class Heartbeat:
    def __init__(self, telemetry: Telemetry, hostname: str, interval: float = INTERVAL) -> None:
        self.telemetry = telemetry
        self.hostname = hostname
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.telemetry.heartbeat(self.hostname, time.time())
            except redis.RedisError as exc:  # Redis away for a moment: /readyz will say so; keep trying
                if unavailable(exc):
                    REFUSALS.refused("heartbeat not written", exc)  # once per episode
                else:
                    log.warning("heartbeat not written: %s", exc)
            else:
                REFUSALS.accepted()
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
            self.telemetry.forget_worker(self.hostname)
