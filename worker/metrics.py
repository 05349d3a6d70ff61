"""Numbers the workers record in Redis for the API's ``/metrics`` (``api.metrics`` exports them at scrape time).

Kept in Redis rather than in ``prometheus_client`` objects because workers are many short-lived pool processes on
many hosts: one shared hash per metric gives every API replica the same cluster-wide totals.

Redis keys (``P`` is the key prefix)::

    P:retries    hash  "<task>:<cause>" -> reschedules after a retryable error; cause ``transient`` (a cloud error,
                       counted against the item's budget) or ``rate_limited`` (our own limiter said wait)
    P:latency    hash  "<state>:<bucket>" -> items that reached ``state`` within that bucket (not cumulative; the
                       last bucket is ``+Inf``), "<state>:sum" -> seconds, "<state>:count" -> items
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis
from prometheus_client.utils import floatToGoString

# Seconds from acceptance to a terminal state: a rejection takes seconds, a copy minutes, a big batch hours.
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
INF = "+Inf"


def retries_key(prefix: str) -> str:
    return f"{prefix}:retries"


def latency_key(prefix: str) -> str:
    return f"{prefix}:latency"


def record_retry(client: redis.Redis, prefix: str, task: str, cause: str) -> None:
    client.hincrby(retries_key(prefix), f"{task}:{cause}", 1)


def record_latency(client: redis.Redis, prefix: str, state: str, seconds: float) -> None:
    seconds = max(0.0, seconds)
    index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
    bucket = _bound(LATENCY_BUCKETS[index]) if index < len(LATENCY_BUCKETS) else INF
    pipe = client.pipeline(transaction=True)  # the buckets, sum and count move together
    pipe.hincrby(latency_key(prefix), f"{state}:{bucket}", 1)
    pipe.hincrbyfloat(latency_key(prefix), f"{state}:sum", seconds)
    pipe.hincrby(latency_key(prefix), f"{state}:count", 1)
    pipe.execute()


@dataclass
class Histogram:
    """One state's latency as Prometheus wants it: cumulative ``(bound, count)`` pairs ending in ``+Inf``."""

    buckets: list[tuple[str, int]] = field(default_factory=list)
    total: float = 0.0


def read_latency(raw: Mapping[bytes | str, bytes | str]) -> dict[str, Histogram]:
    """Turn the ``P:latency`` hash into a cumulative histogram per terminal state."""
    per_state: dict[str, dict[str, float]] = {}
    for key, value in raw.items():
        state, _, name = as_text(key).rpartition(":")
        per_state.setdefault(state, {})[name] = float(as_text(value))
    histograms = {}
    for state, fields in per_state.items():
        running, buckets = 0, []
        for bound in [*(_bound(b) for b in LATENCY_BUCKETS), INF]:
            running += int(fields.get(bound, 0))
            buckets.append((bound, running))
        histograms[state] = Histogram(buckets, fields.get("sum", 0.0))
    return histograms


def _bound(seconds: float) -> str:
    return floatToGoString(seconds)  # "60.0", as prometheus_client writes its own ``le`` labels


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
