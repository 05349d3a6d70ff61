"""Episodes of Redis refusing writes (memory limit, READONLY replica mid-failover, unreachable or stalled): each
process logs one line when an episode starts and one when it ends, not one per attempt, and counts it in
telemetry (``imsrep_redis_refusal_episodes`` and ``imsrep_redis_refused_seconds`` in ``/metrics``) once Redis takes
writes again. The API's ``/readyz`` says so while it lasts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger("imsrep.redis")

BACKOFF_BASE = 0.5
BACKOFF_CAP = 5.0


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential, capped, with jitter, so that many processes
    waiting on one Redis do not all come back at the same instant."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class Refusals:
    """One process's view of whether Redis takes its writes, with a log line per change."""

    def __init__(self, process: str = "process", clock: Callable[[], float] = time.monotonic) -> None:
        self.process = process
        self._clock = clock
        self._since: float | None = None
        self._lock = threading.Lock()
        self._record: Callable[[str, float], None] | None = None

    def configure(self, process: str, record: Callable[[str, float], None] | None) -> None:
        """Name this process (worker, beat, api) and say how an ended episode is counted."""
        self.process = process
        self._record = record

    @property
    def refusing(self) -> bool:
        return self._since is not None

    def refused(self, what: str, exc: BaseException) -> None:
        """Redis refused a write (or did not answer); only the first refusal of an episode is logged."""
        with self._lock:
            if self._since is not None:
                return
            self._since = self._clock()
        words = str(exc).split("caused error: ", 1)[-1]  # Redis's own words, not redis-py's echo of the command
        log.warning(
            "%s: Redis refuses writes (%s): %s; backing off until it takes them again", self.process, words, what
        )

    def accepted(self) -> None:
        """A write went through: an episode under way has ended."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            seconds, self._since = self._clock() - self._since, None
        log.warning("%s: Redis takes writes again after %.1fs", self.process, seconds)
        if self._record is not None:
            try:
                self._record(self.process, seconds)
            except redis.RedisError as exc:  # a relapse: the next episode will be logged
                log.debug("refusal episode not counted: %s", exc)


REFUSALS = Refusals()
