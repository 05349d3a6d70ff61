"""Increments a process adds to Redis hashes later, all in one go: metrics that would otherwise cost a round trip
each, several times per item (the cloud's answers, item latencies).

A worker adds them up when a task sends its next steps (``DataLayer.steps_sent``, in the same round trip) or ends
(``DataLayer.flush``); a worker killed in between loses its last task's increments, which metrics can bear and
items never depend on.
"""

from __future__ import annotations

import threading
from collections import Counter

import redis


class Tally:
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._sums: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()  # a message's steps may run side by side on the process's step threads

    def count(self, key: str, field: str) -> None:
        with self._lock:
            self._counts[(key, field)] += 1

    def add(self, key: str, field: str, amount: float) -> None:
        with self._lock:
            self._sums[(key, field)] += amount

    def __bool__(self) -> bool:
        return bool(self._counts or self._sums)

    def into(self, pipe: redis.client.Pipeline) -> None:
        """Queue the increments in ``pipe`` (the caller executes it) and start again from nothing."""
        with self._lock:
            counts, sums = self._counts, self._sums
            self._counts, self._sums = Counter(), Counter()
        for (key, field), n in counts.items():
            pipe.hincrby(key, field, n)
        for (key, field), amount in sums.items():
            pipe.hincrbyfloat(key, field, amount)
