"""How fast the machine is while a run goes on: a fixed piece of Python work, timed once a second on a thread of the
bench's own, in that thread's CPU time.

On a shared machine the same run's CPU per item moves by a third or more within an hour, every service's together,
while the work (IMS calls, Redis commands) stays the same (docs/performance.md, "What bounds many projects"). This
work moves with them: read beside a run's figures, it tells a slow stretch of the machine from a change in the code.
Its median over the run is reported; a sample costs about 10 ms of one core a second.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import threading
import time
from types import TracebackType

from bench.report import Figure

ROUNDS = 1000  # about 10 ms of CPU on this machine's fast hours
INTERVAL = 1.0  # seconds between samples
NOTE = "a fixed Python loop (JSON, HMAC, dicts) timed once a second during the run, median: lower is a faster machine"
_IMAGE = {
    "id": "61b5f744-e8c1-5e00-83b3-880be29ee80f",
    "name": "copy_cn-north-4_bench-00000",
    "status": "active",
    "min_disk": 40,
    "size": 2147483648,
    "__data_origin": "image,61b5f744-e8c1-5e00-83b3-880be29ee80f",
    "created_at": "2026-12-07T09:13:12Z",
}
_KEY = b"k" * 32


def reference_ms(rounds: int = ROUNDS) -> float:
    """CPU milliseconds this thread takes for the fixed work: per round, what a worker does around an IMS answer in
    miniature (a JSON body written and read, a request's canonical form hashed and signed, a dict sorted)."""
    started = time.thread_time()
    for i in range(rounds):
        body = json.dumps({"images": [dict(_IMAGE, name=f"copy-{i}")]}, separators=(",", ":"))
        image = json.loads(body)["images"][0]
        canonical = "\n".join(("GET", "/v2/cloudimages/", f"id={image['id']}", "host:ims", body[:64]))
        hmac.new(_KEY, hashlib.sha256(canonical.encode()).hexdigest().encode(), hashlib.sha256).hexdigest()
        sorted(image.items())
    return (time.thread_time() - started) * 1000


class SpeedProbe:
    """``reference_ms`` every ``interval`` seconds while the ``with`` block runs (a first sample at its start)."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.samples: list[float] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speed-probe", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(reference_ms())
            if self._stop.wait(self._interval):
                return

    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    def __enter__(self) -> SpeedProbe:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


def figure(scenario: str, reference: float) -> Figure:
    return Figure(scenario, "reference work, CPU ms (machine speed)", reference, "ms", note=NOTE)
