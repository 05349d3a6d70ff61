"""The cluster-wide request-rate limiter: one token bucket per account in Redis, shared by every worker process.

The bucket (``worker.data.accounts``, ``lua/take_token.lua``) refills at ``request_rate`` tokens a second up to
``request_burst``, on Redis's clock. A caller that would wait at most ``MAX_WAIT`` seconds has its token reserved
(the bucket goes into debt) and sleeps that short while; a longer wait is refused with
``RateLimited(retry_after=wait)``, which the pipeline turns into a rescheduled task (with jitter) rather than a
long sleep inside a worker slot. Every answer is counted for ``/metrics``.
"""

from __future__ import annotations

import time

from config.settings import AccountSettings
from worker.data import DataLayer
from worker.errors import ThrottledError
from worker.ims.hooks import ClientHooks

MAX_WAIT = 1.0  # seconds: a shorter wait is slept through (cheaper than a reschedule), a longer one refused


class RateLimited(ThrottledError):
    """Our own limiter refused a request before it was sent: nothing reached the cloud, nothing to count."""


class RateLimitHooks(ClientHooks):
    """``ClientHooks`` for one account's ImsClient: every request takes a token; answers are counted."""

    def __init__(self, data: DataLayer, account_name: str, account: AccountSettings) -> None:
        self.data = data
        self.account_name = account_name
        self.rate = account.request_rate
        self.burst = account.request_burst

    def before_request(self, endpoint: str) -> None:
        wait = self.data.accounts.take_token(self.account_name, self.rate, self.burst, MAX_WAIT)
        if wait < 0:
            raise RateLimited(
                f"request rate limit of account {self.account_name} reached", endpoint=endpoint, retry_after=-wait
            )
        if wait > 0:
            time.sleep(wait)

    def after_response(self, endpoint: str, outcome: str) -> None:
        self.data.telemetry.record_ims_outcome(endpoint, outcome)
