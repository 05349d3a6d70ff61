"""The worker's consumer, reconnecting to a broker that came back within a second or two rather than half a minute.

Celery's consumer retries a lost broker connection with kombu's ``ensure_connection`` defaults: a round over the
URL's hosts (each Sentinel), then 2 s, 4 s, 6 s ... up to 30 s between rounds. A Sentinel failover takes a few
seconds, so the round after it came 4 s late in the failover tier (docs/reliability.md), and later ones up to 30 s:
every worker idle that long with Redis already back. Here rounds come 0.25 s apart at first, growing by 0.25 s to
2 s at most: a few connection attempts a second at worst against a server that is down.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

RETRY_START = 0.25
RETRY_STEP = 0.25
RETRY_MAX = 2.0


class Consumer(CeleryConsumer):
    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = partial(
            conn.ensure_connection, interval_start=RETRY_START, interval_step=RETRY_STEP, interval_max=RETRY_MAX
        )
        return super().ensure_connected(conn)
