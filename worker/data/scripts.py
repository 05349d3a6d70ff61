"""The Lua scripts of ``worker/data/lua/``, read once per process and registered once per client.

Each file opens with the keys it uses. redis-py's ``Script`` calls ``EVALSHA`` and, on ``NOSCRIPT`` (a Redis
restarted, or a replica promoted, since the script was loaded), loads the script again and retries: no caller has
to care whether the server still has it.

Redis has no ``include``: a script whose header says ``Uses lib/<name>.lua`` is sent with that file before it, both
after the domain's constants the libraries read (``TERMINAL``: the terminal states), which are thus written down
once, in Python.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

from worker.domain.states import TERMINAL

_DIR = Path(__file__).with_name("lua")
_USES = re.compile(r"^-- Uses lib/(\w+)\.lua", re.MULTILINE)


@cache
def source(name: str) -> str:
    text = (_DIR / f"{name}.lua").read_text()
    libraries = [(_DIR / "lib" / f"{used}.lua").read_text() for used in _USES.findall(text)]
    return "".join([_constants(), *libraries, text]) if libraries else text


def _constants() -> str:
    # Sorted: the same text, so the same script SHA, in every process (a set's order is not).
    terminal = ", ".join(f"'{state.value}'" for state in sorted(TERMINAL, key=lambda s: s.value))
    return f"local TERMINAL = {{{terminal}}}\n"


def register(client: redis.Redis, name: str) -> Script:
    return client.register_script(source(name))
