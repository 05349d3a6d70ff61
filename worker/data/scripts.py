"""The Lua scripts of ``worker/data/lua/``, read once per process and registered once per client.

Each file opens with the keys it uses. redis-py's ``Script`` calls ``EVALSHA`` and, on ``NOSCRIPT`` (a Redis
restarted, or a replica promoted, since the script was loaded), loads the script again and retries: no caller has
to care whether the server still has it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

_DIR = Path(__file__).with_name("lua")


@cache
def source(name: str) -> str:
    return (_DIR / f"{name}.lua").read_text()


def register(client: redis.Redis, name: str) -> Script:
    return client.register_script(source(name))
