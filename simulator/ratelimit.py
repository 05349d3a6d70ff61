"""The gateway's per-project request rate: a token bucket refilled continuously, one second of burst."""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate: float, clock=time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def take(self) -> bool:
        """Spend one request's token if there is one."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
