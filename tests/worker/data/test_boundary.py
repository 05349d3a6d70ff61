"""The data layer's boundary: outside ``worker/data`` no module builds a Redis key or holds a raw Redis client."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from worker.data.keyspace import Keyspace

ROOT = Path(__file__).parents[3]
PACKAGES = ("api", "worker", "cli", "config", "simulator", "bench")
DATA_LAYER = ROOT / "worker" / "data"

# A raw client, made or reached through; a script registered by hand; a bytes-or-str helper for Redis replies.
RAW_REDIS = re.compile(r"redis\.(Strict)?Redis\(|\.from_url\(|register_script\(|decode_responses|\.redis\.\w+\(")
# Our key names: what every key method of ``worker/data/keyspace.py`` puts after the prefix before its first argument
# (``:item``, ``:lock:submit``, ``.waiting.``), derived, so a key added there is covered here at once.
NOT_KEYS = frozenset({"pool_in_key", "pool_patterns", "broker_queue_lists"})  # Keyspace's helpers that make no key
_ARG = "\x00"  # stands for each argument of a key method


def _keys(prefix: str, arg: str) -> dict[str, str]:
    """Every key the keyspace makes, by method, each argument ``arg``."""
    keys, found = Keyspace(prefix=prefix), {}
    for name, method in vars(Keyspace).items():
        if name.startswith("_") or name in NOT_KEYS or not callable(method):
            continue
        key = getattr(keys, name)(*[arg] * (len(inspect.signature(method).parameters) - 1))
        assert isinstance(key, str) and key.startswith(prefix), f"Keyspace.{name} makes no key: add it to NOT_KEYS"
        found[name] = key
    return found


def _key_names() -> set[str]:
    return {key.removeprefix("P").split(_ARG)[0].rstrip(":") for key in _keys("P", _ARG).values()}


# A name ending in a letter must end there (``:item`` is not ``:items``); one ending in a separator is followed by
# what the key's argument is.
KEY_NAMES = sorted(_key_names(), key=len, reverse=True)
KEY_SEGMENTS = re.compile(
    r"""["'][^"'\n]*(?:"""
    + "|".join(re.escape(name) + (r"\b" if name[-1].isalnum() else "") for name in KEY_NAMES)
    + r""")[^"'\n]*["']"""
)


def _modules() -> list[Path]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if DATA_LAYER not in path.parents:
                found.append(path)
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_the_data_layer_touches_raw_redis_or_builds_a_key(path: Path) -> None:
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert not RAW_REDIS.search(code), f"{path}: reaches Redis directly; add a verb to worker/data instead"
    assert not KEY_SEGMENTS.search(code), f"{path}: builds a Redis key; worker/data/keyspace.py makes every key"


@pytest.mark.parametrize(("method", "key"), sorted(_keys("imsrep", "some-id").items()))
def test_the_pattern_knows_every_key_the_keyspace_makes(method: str, key: str) -> None:
    assert KEY_SEGMENTS.search(repr(key)), f"Keyspace.{method}: {key!r} would pass for a string that is no key"
