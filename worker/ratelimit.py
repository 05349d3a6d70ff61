"""What every request of an account passes through: its credentials' hold, its circuit and its request rate,
cluster-wide, in Redis.

Before a request (``before_request``): nothing while the account's credentials are on hold (refused a moment ago:
``AuthenticationError``, as the cloud's own refusal would be); while its circuit is open (its requests kept
failing: an outage) nothing is sent but one probe per probe interval (``CircuitOpen``); otherwise a token of the
account's bucket is taken (``worker.data.accounts``, ``lua/take_token.lua``: ``request_rate`` tokens a second up
to ``request_burst``, on Redis's clock). A wait of at most ``MAX_WAIT`` seconds is slept through; a longer one is
refused (``RateLimited``), and the pipeline reschedules the step rather than sleep inside a worker slot. After it
(``after_response``): every answer is counted for ``/metrics`` and tells the circuit whether the cloud answered;
an answer while the circuit is closed with no failure counted (``Token.clean``) only counts, in the process's
tally, added up when its task ends (``worker.data.tally``).
"""

from __future__ import annotations

import logging
import threading
import time

from config.settings import AccountSettings, Settings
from worker.data import DataLayer
from worker.data.accounts import CircuitPolicy
from worker.errors import AuthenticationError, ThrottledError
from worker.ims.hooks import ClientHooks
from worker.ims.roundtrip import RoundTrip

log = logging.getLogger("worker.circuit")

MAX_WAIT = 1.0  # seconds: a shorter wait is slept through (cheaper than a reschedule), a longer one refused
# Outcomes that say the cloud did not answer: no answer at all, a server error, a malformed body, the gateway's 429.
_TRANSIENT = frozenset({"timeout", "connection_error", "malformed", "429"})
# The token request failed before the real one was sent: its own outcome (the ``token`` call) is what counts.
_NEITHER = frozenset({"token_error"})


class HeldBack(ThrottledError):
    """Our side held the request back before it was sent: nothing reached the cloud, the item is not at fault."""


class RateLimited(HeldBack):
    """The account's request rate is used up for now."""


class CircuitOpen(HeldBack):
    """The account's requests have been failing: only a probe may go until one gets an answer."""


def outcome_kind(outcome: str) -> str:
    """``transient`` (the cloud did not answer), ``answer`` (it did, whatever it said) or ``neither``."""
    if outcome in _NEITHER:
        return "neither"
    if outcome in _TRANSIENT or (outcome.isdigit() and int(outcome) >= 500):
        return "transient"
    return "answer"


class RateLimitHooks(ClientHooks):
    """``ClientHooks`` for one account's ImsClient: the circuit and the rate before, counting after."""

    def __init__(
        self,
        data: DataLayer,
        account_name: str,
        account: AccountSettings,
        settings: Settings,
        round_trip: RoundTrip | None = None,
    ) -> None:
        self.data = data
        self.account_name = account_name
        self.rate = account.request_rate
        self.burst = account.request_burst
        self.policy = CircuitPolicy(settings.circuit_failures, settings.probe_interval, settings.probe_max_interval)
        self.round_trip = round_trip or RoundTrip()
        # Per thread (a process's step threads share the account's client): what this thread's last token said (an
        # answer to its request changes nothing in the circuit) and when its request went out.
        self._call = threading.local()

    @property
    def clean(self) -> bool:
        return getattr(self._call, "clean", False)

    def before_request(self, endpoint: str) -> None:
        token = self.data.accounts.take_token(self.account_name, self.rate, self.burst, MAX_WAIT)
        self._call.clean = token.clean
        if token.verdict == "held":  # no endpoint: the cloud did not refuse this one, nothing to hold again
            raise AuthenticationError(f"credentials of account {self.account_name} were refused recently: {token.why}")
        if token.verdict == "circuit":
            raise CircuitOpen(
                f"account {self.account_name} is in an outage; next probe in {token.seconds:.1f}s",
                endpoint=endpoint,
                retry_after=token.seconds,
            )
        if token.verdict == "rate":
            raise RateLimited(
                f"request rate limit of account {self.account_name} reached",
                endpoint=endpoint,
                retry_after=token.seconds,
            )
        if token.seconds > 0:
            time.sleep(token.seconds)
        self._call.sent = time.monotonic()

    def after_response(self, endpoint: str, outcome: str) -> None:
        kind = outcome_kind(outcome)
        if kind == "answer":
            self.round_trip.add(time.monotonic() - getattr(self._call, "sent", time.monotonic()))
        if kind == "answer" and self.clean:
            self.data.accounts.count_answer(endpoint, outcome)
            return
        change = self.data.accounts.record_outcome(self.account_name, endpoint, outcome, kind, self.policy)
        if change == "opened":
            log.warning(
                "account %s: requests keep failing (%s %s); holding its items back",
                self.account_name,
                endpoint,
                outcome,
            )
        elif change == "closed":
            log.warning("account %s: the cloud answers again; resuming", self.account_name)
