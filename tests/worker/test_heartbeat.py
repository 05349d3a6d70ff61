"""The worker heartbeat the API's /readyz reads."""

from __future__ import annotations

import time

from cli.processes import wait_until
from worker.heartbeat import Heartbeat


def test_heartbeat_writes_then_clears_on_stop(redis_server) -> None:
    telemetry = redis_server.data().telemetry
    beat = Heartbeat(telemetry, "worker@test", interval=0.05).start()
    wait_until(lambda: telemetry.workers_seen(since=0) == 1, 5, "a heartbeat")
    wait_until(lambda: telemetry.workers_seen(since=time.time() - 0.04) == 1, 5, "a later heartbeat")
    beat.stop()
    assert telemetry.workers_seen(since=0) == 0
