"""The worker heartbeat the API's /readyz reads."""

from __future__ import annotations

import time

from cli.processes import wait_until
from worker.heartbeat import Heartbeat


def test_heartbeat_writes_then_clears_on_stop(redis_server) -> None:
    telemetry = redis_server.data().telemetry
    beat = Heartbeat(telemetry, "worker@test", interval=0.05).start()
    wait_until(lambda: telemetry.workers_seen(since=0) == 1, 5, "a heartbeat")
    # One written after this moment, whenever it comes: a window of the last 40 ms, sampled every 50 ms as the
    # thread beats every 50 ms, could miss every beat for the whole deadline (it did once in CI).
    seen = time.time()
    wait_until(lambda: telemetry.workers_seen(since=seen) == 1, 5, "a later heartbeat")
    beat.stop()
    assert telemetry.workers_seen(since=0) == 0
