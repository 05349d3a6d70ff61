"""Injected faults: spurious 429s, 5xx answers and hanging requests, all drawn from the seeded stream."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from simulator.config import FaultKnobs
from simulator.errors import GatewayError

# What an injected server error looks like: the gateway's own 5xx answers (https://support.huaweicloud.com/intl/en-us/devg-apisign/api-sign-errorcode.html).
SERVER_ERRORS = (
    (502, "APIGW.0201", "Backend unavailable"),
    (503, "APIGW.0613", "IAM unavailable"),
    (504, "APIGW.0201", "Backend timeout"),
)


@dataclass(frozen=True)
class FaultPlan:
    """The faults one request will meet."""

    throttle: bool
    error: GatewayError | None
    hang: bool
    server_error: GatewayError  # the 5xx this request would get: injected if ``error``, or during an outage


class FaultInjector:
    def __init__(self, knobs: FaultKnobs, rng: random.Random) -> None:
        self.knobs = knobs
        self._rng = rng
        self.counts: Counter[str] = Counter()

    def plan(self) -> FaultPlan:
        # Four draws per request whatever the knobs are, so a run is reproducible from the seed and
        # changing one knob at runtime does not shift the others' outcomes.
        throttle, error, kind, hang = (self._rng.random() for _ in range(4))
        status, code, message = SERVER_ERRORS[int(kind * len(SERVER_ERRORS))]
        server_error = GatewayError(status, code, message)
        return FaultPlan(
            throttle=throttle < self.knobs.throttle_rate,
            error=server_error if error < self.knobs.error_rate else None,
            hang=hang < self.knobs.hang_rate,
            server_error=server_error,
        )

    def count(self, fault: str) -> None:
        self.counts[fault] += 1
