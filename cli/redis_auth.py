"""The passwords of a local stack's Redis servers and Sentinels.

A Redis the stack runs itself is never open: what ``IMSREP_REDIS_PASSWORD`` and ``IMSREP_REDIS_SENTINEL_PASSWORD`` do
not set is made at random at each start. The services get the passwords in their environment, Redis and the
Sentinels in configuration files only their owner can read (``cli.services``), and a client of the stack (redis-cli,
the tests, the benchmarks) in files of the state directory, mode 0600, that stack.json names: never stack.json itself,
a command line or ``imsrep up``'s output.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import Settings, redis_nodes
from worker.data import redis_target

SERVER_PASSWORD_FILE = "redis.password"
SENTINEL_PASSWORD_FILE = "sentinel.password"


@dataclass(frozen=True)
class RedisPasswords:
    """The servers' password (master and replicas share it) and the Sentinels'; None: none is asked for."""

    server: str | None = field(default=None, repr=False)
    sentinel: str | None = field(default=None, repr=False)


def stack_passwords(settings: Settings, *, own_redis: bool, sentinel: bool) -> RedisPasswords:
    """The configured passwords (a URL's included); for a Redis the stack runs itself, a strong random one for each
    that is not configured."""
    configured = redis_target(settings)
    server = configured.password or redis_nodes(settings.redis_url).password
    sentinel_password = configured.sentinel_password
    if own_redis:
        server = server or secrets.token_urlsafe(32)
        if sentinel:
            sentinel_password = sentinel_password or secrets.token_urlsafe(32)
    return RedisPasswords(server, sentinel_password)


def read_password(path: str | None) -> str | None:
    """A password file's password (None: no file)."""
    return Path(path).read_text().strip() if path else None
