"""How far the cloud is: a moving average of this process's IMS round trips (from the request sent to its answer).

A message carries many steps only when they wait on the cloud (``worker.bundles``): 150-300 ms away, 25 steps side by
side cost about one round trip; on a cloud a few milliseconds away the steps' own work, one after another, is most of
a message, and 25 of them hold the last one's slot hand-off back by a tenth of a 2-second copy.
"""

from __future__ import annotations

import threading

WEIGHT = 0.05  # of each new round trip: about the last 20 calls


class RoundTrip:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds = 0.0  # none measured yet: as near as can be

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds = seconds if self.seconds == 0.0 else self.seconds + WEIGHT * (seconds - self.seconds)
