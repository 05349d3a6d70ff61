"""The one way to a Redis client: every process (API, worker, beat, CLI, tests) connects with the same settings.

Replies are decoded to ``str``; timeouts are explicit, so a dead server is noticed in seconds rather than when the
kernel gives up on a socket; a command that meets a dropped connection is sent again twice, shortly after. Every
write the data layer makes is safe to send again (see ``RecordStore.create_batch``), so these retries cannot store
anything twice.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 10.0
HEALTH_CHECK_INTERVAL = 15  # seconds a pooled connection may sit idle before it is PINGed on reuse


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
