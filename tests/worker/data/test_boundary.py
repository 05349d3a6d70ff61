"""The data layer's boundary: outside ``worker/data`` no module builds a Redis key or holds a raw Redis client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
PACKAGES = ("api", "worker", "cli", "config", "simulator", "bench")
DATA_LAYER = ROOT / "worker" / "data"

# A raw client, made or reached through; a script registered by hand; a bytes-or-str helper for Redis replies.
RAW_REDIS = re.compile(r"redis\.(Strict)?Redis\(|\.from_url\(|register_script\(|decode_responses|\.redis\.\w+\(")
# Our key names: the segments the keyspace owns (``worker/data/keyspace.py``).
KEY_SEGMENTS = re.compile(
    r"""["'][^"'\n]*:(item|batch|batches|state|due|admitting|slots|ring|queue|pool|waiting|quota|health|probe|hold"""
    r"""|durations|ratelimit|deliveries|lock|workers|ims:outcomes|retries|latency|repairs)\b[^"'\n]*["']"""
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
