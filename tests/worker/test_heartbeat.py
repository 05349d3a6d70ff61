"""The worker heartbeat the API's /readyz reads."""

from __future__ import annotations

import time
import uuid

from cli.processes import wait_until
from worker.heartbeat import Heartbeat


def test_heartbeat_writes_then_clears_on_stop(redis_server) -> None:
    client = redis_server.client()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    client.zadd(f"{prefix}:workers", {"long-gone@host": time.time() - 2 * 86_400})
    beat = Heartbeat(client, prefix, "worker@test", interval=0.05).start()
    wait_until(lambda: client.zscore(f"{prefix}:workers", "worker@test") is not None, 5, "a heartbeat")
    first = client.zscore(f"{prefix}:workers", "worker@test")
    wait_until(lambda: client.zscore(f"{prefix}:workers", "worker@test") > first, 5, "a second heartbeat")
    assert client.zscore(f"{prefix}:workers", "long-gone@host") is None  # pruned
    beat.stop()
    assert client.zcard(f"{prefix}:workers") == 0
