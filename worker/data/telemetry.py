"""What the workers record for operators, and what the API's ``/metrics`` and ``/readyz`` read back.

Kept in Redis rather than in ``prometheus_client`` objects because workers are many short-lived pool processes on
many hosts: one shared hash per metric gives every API replica the same cluster-wide totals. Heartbeats say which
workers are alive; queue backlogs are read from kombu's lists.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import redis
from prometheus_client.utils import floatToGoString

from worker.data.keyspace import Keyspace
from worker.data.tally import Tally
from worker.domain.item import IN_REGION

# Seconds from acceptance to a terminal state: a rejection takes seconds, a copy minutes, a big batch hours.
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
INF = "+Inf"
FORGET_WORKER_AFTER = 86_400.0  # a hostname silent this long is dropped from the heartbeat set


@dataclass
class Histogram:
    """One state's latency as Prometheus wants it: cumulative ``(bound, count)`` pairs ending in ``+Inf``."""

    buckets: list[tuple[str, int]] = field(default_factory=list)
    total: float = 0.0


class Telemetry:
    def __init__(self, client: redis.Redis, keys: Keyspace, tally: Tally) -> None:
        self._redis = client
        self._keys = keys
        self._tally = tally

    # Recording (workers) -------------------------------------------------------------------------------------
    def record_retry(self, task: str, cause: str) -> None:
        """A step rescheduled after a retryable error: ``transient`` (a cloud error) or ``rate_limited``."""
        self._redis.hincrby(self._keys.retries(), f"{task}:{cause}", 1)

    def record_latency(self, state: str, seconds: float, mode: str = IN_REGION) -> None:
        """An item (an ``in-region`` or ``cross-region`` copy) reached terminal ``state`` this many seconds after
        it was accepted (added up when the task ends: ``Tally``)."""
        self._count_latency(self._tally, state, seconds, mode)

    def record_latencies(self, latencies: Iterable[tuple[str, float, str]]) -> None:
        """Many items' ``(state, seconds, mode)`` at once, in one round trip: the items a user cancelled (the API
        has no task end to add a tally up at)."""
        tally = Tally()  # the call's own: API requests run on many threads
        for state, seconds, mode in latencies:
            self._count_latency(tally, state, seconds, mode)
        if tally:
            pipe = self._redis.pipeline(transaction=False)
            tally.into(pipe)
            pipe.execute()

    def _count_latency(self, tally: Tally, state: str, seconds: float, mode: str) -> None:
        seconds = max(0.0, seconds)
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        bucket = _bound(LATENCY_BUCKETS[index]) if index < len(LATENCY_BUCKETS) else INF
        key = self._keys.latency()
        # In-region fields keep their first form ("<state>:<bucket>"); other modes say theirs ("<state>@<mode>:").
        label = state if mode == IN_REGION else f"{state}@{mode}"
        tally.count(key, f"{label}:{bucket}")
        tally.add(key, f"{label}:sum", seconds)
        tally.count(key, f"{label}:count")

    def record_followup(self, kind: str, outcome: str) -> None:
        """A copy's follow-up (``tags``, ``share``) ended ``applied`` or ``failed``."""
        self._redis.hincrby(self._keys.followups(), f"{kind}:{outcome}", 1)

    def record_ims_outcome(self, endpoint: str, outcome: str) -> None:
        self._redis.hincrby(self._keys.ims_outcomes(), f"{endpoint}:{outcome}", 1)

    def record_repairs(self, repairs: Mapping[str, int]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for kind, count in repairs.items():
            pipe.hincrby(self._keys.repairs(), kind, count)
        pipe.execute()

    def heartbeat(self, hostname: str, now: float) -> None:
        key = self._keys.workers()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(key, {hostname: now})
        pipe.zremrangebyscore(key, "-inf", now - FORGET_WORKER_AFTER)
        pipe.execute()

    def forget_worker(self, hostname: str) -> None:
        """A worker that stops cleanly is not one that went silent."""
        self._redis.zrem(self._keys.workers(), hostname)

    def beat_heartbeat(self, name: str, now: float) -> None:
        """A beat's scheduler ticked (it ticks every few seconds, leading or standing by)."""
        key = self._keys.beats()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(key, {name: now})
        pipe.zremrangebyscore(key, "-inf", now - FORGET_WORKER_AFTER)
        pipe.execute()

    def forget_beat(self, name: str) -> None:
        self._redis.zrem(self._keys.beats(), name)

    def record_refusal(self, process: str, seconds: float) -> None:
        """An episode of Redis refusing a process's writes ended after ``seconds`` (``worker.pressure``)."""
        key = self._keys.refusals()
        pipe = self._redis.pipeline(transaction=True)
        pipe.hincrby(key, f"{process}:episodes", 1)
        pipe.hincrbyfloat(key, f"{process}:seconds", seconds)
        pipe.execute()

    def probe_writes(self) -> None:
        """Raise a ``redis.RedisError`` unless Redis takes a write now (at its memory limit it answers OOM, a
        replica READONLY): one increment of the fence counter."""
        self._redis.incr(self._keys.fence())

    # Reading (the API) ---------------------------------------------------------------------------------------
    def workers_seen(self, since: float) -> int:
        """Workers whose last heartbeat is at ``since`` or later."""
        return int(self._redis.zcount(self._keys.workers(), since, "+inf"))

    def beats_seen(self, since: float) -> int:
        """Beats whose scheduler ticked at ``since`` or later."""
        return int(self._redis.zcount(self._keys.beats(), since, "+inf"))

    def refusals(self) -> dict[str, tuple[int, float]]:
        """process -> (episodes, seconds) of Redis refusing its writes."""
        found: dict[str, list[float]] = {}
        for name, value in self._redis.hgetall(self._keys.refusals()).items():
            process, _, what = name.rpartition(":")
            found.setdefault(process, [0, 0.0])[0 if what == "episodes" else 1] = float(value)
        return {process: (int(episodes), seconds) for process, (episodes, seconds) in found.items()}

    def queue_backlog(self, queue: str) -> int:
        """Messages waiting in a stage queue, its priority lists included."""
        pipe = self._redis.pipeline(transaction=False)
        for name in self._keys.broker_queue_lists(queue):
            pipe.llen(name)
        return sum(int(n) for n in pipe.execute())

    def ims_outcomes(self) -> dict[tuple[str, str], int]:
        """(endpoint, outcome) -> answers."""
        found = {}
        for name, n in self._redis.hgetall(self._keys.ims_outcomes()).items():
            endpoint, _, outcome = name.partition(":")
            found[(endpoint, outcome)] = int(n)
        return found

    def repairs(self) -> dict[str, int]:
        return {kind: int(n) for kind, n in self._redis.hgetall(self._keys.repairs()).items()}

    def retries(self) -> dict[tuple[str, str], int]:
        """(task, cause) -> reschedules."""
        found = {}
        for name, n in self._redis.hgetall(self._keys.retries()).items():
            task, _, cause = name.rpartition(":")
            found[(task, cause)] = int(n)
        return found

    def followups(self) -> dict[tuple[str, str], int]:
        """(kind, outcome) -> follow-ups ended so."""
        found = {}
        for name, n in self._redis.hgetall(self._keys.followups()).items():
            kind, _, outcome = name.partition(":")
            found[(kind, outcome)] = int(n)
        return found

    def latency(self) -> dict[tuple[str, str], Histogram]:
        """A cumulative histogram per (terminal state, mode)."""
        per_state: dict[tuple[str, str], dict[str, float]] = {}
        for name, value in self._redis.hgetall(self._keys.latency()).items():
            label, _, bound = name.rpartition(":")
            state, _, mode = label.partition("@")
            per_state.setdefault((state, mode or IN_REGION), {})[bound] = float(value)
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
