"""What the cluster knows about each account beyond its items: its circuit (is the cloud answering it?), a hold on
refused credentials, how long its copies take (and, before any has finished, how far the first ones got), and its
request-rate bucket.

The circuit: ``record_outcome`` counts consecutive transient failures of the account's requests and opens the
circuit at ``failures_to_open``; while it is open ``take_token`` refuses every request but one probe per probe
interval (which doubles, up to a cap, each time a probe fails); the first real answer closes it. The seconds it
was open add up in ``outage``, so deadlines can measure the cloud's time rather than the outage's.

Every answer is counted for ``/metrics`` (``P:ims:outcomes``). An answer the circuit has nothing to hear of (the
token said it is closed with no failure counted: ``Token.clean``) is only counted, in the process's ``Tally``, added
up when its task ends: one round trip a request instead of two, in the common case of a cloud that answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from worker.data.keyspace import Keyspace
from worker.data.scripts import register
from worker.data.tally import Tally

DURATION_SAMPLES = 20  # latest successful copies an account's duration forecast is fitted on
# Seconds a process goes by the durations it last read or wrote: another process's copy finished meanwhile moves a
# fit over 20 copies by little, and a forecast read per copy cost a round trip.
DURATIONS_FRESH = 1.0
OPEN = "open"  # the circuit's state while the account's requests are held back
PROBE_LOST_AFTER = 60.0  # seconds: a probe that never answered (its worker died) lets another one go


@dataclass(frozen=True)
class CircuitPolicy:
    failures_to_open: int
    first_probe: float
    longest_probe: float


@dataclass(frozen=True)
class Token:
    """What ``take_token`` said: ``go`` after ``seconds``, or stay away that long (``rate``, ``circuit``), or
    ``held`` (the credentials were refused: ``why``)."""

    verdict: str
    seconds: float
    why: str = ""
    clean: bool = False  # the circuit was closed with no failure counted: an answer changes nothing in it


@dataclass(frozen=True)
class Reading:
    """A first look at a copy its pool has no forecast for: ``fraction`` done ``elapsed`` seconds after ``started``."""

    started: float
    size: int | None
    fraction: float
    elapsed: float


@dataclass(frozen=True)
class Health:
    open: bool
    failures: int
    probe_at: float | None  # while open: when the next probe may go
    outage_seconds: float  # every second the circuit has been open, the current outage included
    checked_at: float | None = None  # the last check of the account's credentials (``record_check``)
    check: str | None = None  # what it found: ``ok``, ``refused: ...``, ``unreachable: ...``


def health_from(data: dict[str, str], now: float) -> Health:
    """A ``P:health:<account>`` hash as a ``Health`` at ``now``."""
    is_open = data.get("state") == OPEN
    outage = float(data.get("outage", 0.0))
    if is_open:
        outage += max(0.0, now - float(data.get("opened_at", now)))
    probe_at = float(data["probe_at"]) if is_open and "probe_at" in data else None
    checked_at = float(data["checked_at"]) if "checked_at" in data else None
    return Health(is_open, int(data.get("failures", 0)), probe_at, outage, checked_at, data.get("check"))


class AccountState:
    def __init__(self, client: redis.Redis, keys: Keyspace, tally: Tally) -> None:
        self._redis = client
        self._keys = keys
        self._tally = tally
        self._take_token = register(client, "take_token")
        self._record_outcome = register(client, "record_outcome")
        self._seen: dict[str, tuple[float, list[tuple[float, float]]]] = {}  # pool -> (when, durations)

    # Credentials ---------------------------------------------------------------------------------------------
    def hold(self, account: str, reason: str, seconds: float) -> None:
        """Stop using the account for ``seconds``: its credentials were refused (``reason`` says how)."""
        self._redis.set(self._keys.hold(account), reason, ex=max(1, round(seconds)))

    # Requests and the circuit -------------------------------------------------------------------------------
    def take_token(self, account: str, rate: float, burst: int, max_wait: float) -> Token:
        """Whether one request may go now (or after a short sleep): not while the account is on hold (``hold``),
        then the circuit, then the rate."""
        keys = [self._keys.ratelimit(account), self._keys.health(account), self._keys.hold(account)]
        verdict, value, clean = self._take_token(keys=keys, args=[rate, burst, max_wait, OPEN, PROBE_LOST_AFTER])
        if verdict == "held":
            return Token(verdict, 0.0, value, bool(clean))
        return Token(verdict, float(value), clean=bool(clean))

    def record_outcome(self, account: str, endpoint: str, outcome: str, kind: str, policy: CircuitPolicy) -> str:
        """Count an answer (``kind``: ``answer``, ``transient`` or ``neither``) and tell the circuit; returns
        ``opened``/``closed``/''."""
        keys = [self._keys.ims_outcomes(), self._keys.health(account)]
        args = [f"{endpoint}:{outcome}", kind, policy.failures_to_open, policy.first_probe, policy.longest_probe, OPEN]
        return self._record_outcome(keys=keys, args=args)

    def count_answer(self, endpoint: str, outcome: str) -> None:
        """Count an answer the circuit has nothing to hear of (added up when the task ends: ``Tally``)."""
        self._tally.count(self._keys.ims_outcomes(), f"{endpoint}:{outcome}")

    def record_check(self, account: str, result: str, now: float) -> None:
        """What the last check of the account's credentials found (one signed read call)."""
        self._redis.hset(self._keys.health(account), mapping={"check": result, "checked_at": now})

    def schedule_probe(self, account: str, seconds: float, *, renew: bool = False) -> bool:
        """Claim the account's next probe, due in ``seconds`` (one probe task per account at a time); False if
        one is already scheduled. ``renew``: the probe task itself schedules its successor."""
        ttl = max(1, round(seconds) + 1)
        return bool(self._redis.set(self._keys.probe(account), "1", nx=not renew, ex=ttl))

    def health(self, account: str, now: float) -> Health:
        return health_from(self._redis.hgetall(self._keys.health(account)), now)

    # Copy durations -------------------------------------------------------------------------------------------
    def record_duration(self, account: str, size: int, seconds: float) -> None:
        key = self._keys.durations(account)
        pipe = self._redis.pipeline(transaction=False)
        pipe.lpush(key, f"{size} {seconds:.3f}")
        pipe.ltrim(key, 0, DURATION_SAMPLES - 1)
        pipe.lrange(key, 0, -1)
        self._seen[account] = (time.monotonic(), _samples(pipe.execute()[-1]))

    def record_reading(self, pool: str, reading: Reading, ttl: float) -> None:
        value = f"{reading.started} {reading.size or 0} {reading.fraction} {reading.elapsed}"
        self._redis.set(self._keys.reading(pool), value, px=max(1, round(ttl * 1000)))

    def reading(self, pool: str) -> Reading | None:
        value = self._redis.get(self._keys.reading(pool))
        if value is None:
            return None
        started, size, fraction, elapsed = value.split()
        return Reading(float(started), int(size) or None, float(fraction), float(elapsed))

    def durations(self, account: str) -> list[tuple[float, float]]:
        """(bytes, seconds) of the account's latest successful copies, newest first; as this process last read or
        wrote them if that was less than ``DURATIONS_FRESH`` ago (a hand-off records a copy's duration and then
        forecasts the next copy's, of the same pool)."""
        at, samples = self._seen.get(account, (0.0, []))
        if time.monotonic() - at > DURATIONS_FRESH:
            samples = _samples(self._redis.lrange(self._keys.durations(account), 0, -1))
            self._seen[account] = (time.monotonic(), samples)
        return samples


def _samples(entries: list[str]) -> list[tuple[float, float]]:
    samples = []
    for entry in entries:
        size, seconds = entry.split()
        samples.append((float(size), float(seconds)))
    return samples
