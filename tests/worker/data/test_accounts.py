"""Per-account state against a real Redis server: the circuit, the request-rate bucket, credential holds, copy
durations."""

from __future__ import annotations

import pytest

from cli.processes import wait_until
from worker.data import AccountState
from worker.data.accounts import DURATION_SAMPLES, CircuitPolicy

POLICY = CircuitPolicy(failures_to_open=3, first_probe=0.3, longest_probe=1.0)


@pytest.fixture
def accounts(redis_server) -> AccountState:
    return redis_server.data().accounts


def _take(accounts: AccountState, account: str = "a", rate: float = 1.0, burst: int = 3, max_wait: float = 0):
    return accounts.take_token(account, rate, burst, max_wait)


def test_burst_then_refusal_with_a_wait(accounts: AccountState) -> None:
    assert [(t.verdict, t.seconds) for t in (_take(accounts) for _ in range(3))] == [("go", 0.0)] * 3
    refused = _take(accounts)
    assert refused.verdict == "rate" and 0.9 < refused.seconds < 1.01  # about one second until the next token
    assert _take(accounts, "b").verdict == "go"  # another account has its own bucket


def test_short_waits_are_reserved_not_refused(accounts: AccountState) -> None:
    assert _take(accounts, rate=10.0, burst=1, max_wait=0.5).seconds == 0
    first, second = (_take(accounts, rate=10.0, burst=1, max_wait=0.5) for _ in range(2))
    assert first.verdict == second.verdict == "go"
    assert 0 < first.seconds <= 0.1 and 0.1 < second.seconds <= 0.2  # each reserved its own future token


def test_consecutive_transient_failures_open_the_circuit_then_one_probe_at_a_time(accounts: AccountState) -> None:
    assert accounts.record_outcome("a", "copy", "503", "transient", POLICY) == ""
    accounts.record_outcome("a", "copy", "200", "answer", POLICY)  # an answer in between: start counting again
    changes = [accounts.record_outcome("a", "job", "timeout", "transient", POLICY) for _ in range(3)]
    assert changes == ["", "", "opened"]
    health = accounts.health("a", now=0.0)
    assert health.open and health.failures == 3 and health.probe_at is not None
    held = _take(accounts, rate=100.0, burst=100)
    assert held.verdict == "circuit" and 0 < held.seconds <= POLICY.first_probe
    assert _take(accounts, "b", rate=100.0, burst=100).verdict == "go"  # other accounts go on
    wait_until(lambda: _take(accounts, rate=100.0, burst=100).verdict == "go", 5, "the probe's turn")
    assert _take(accounts, rate=100.0, burst=100).verdict == "circuit"  # one probe at a time
    accounts.record_outcome("a", "quota", "connection_error", "transient", POLICY)  # the probe failed
    after = accounts.health("a", now=0.0)
    assert after.open and after.probe_at > health.probe_at  # and the next one waits twice as long
    wait_until(lambda: _take(accounts, rate=100.0, burst=100).verdict == "go", 5, "the next probe's turn")
    assert accounts.record_outcome("a", "quota", "200", "answer", POLICY) == "closed"
    closed = accounts.health("a", now=0.0)
    assert not closed.open and closed.failures == 0 and closed.outage_seconds > 0.3
    assert _take(accounts, rate=100.0, burst=100).verdict == "go"


def test_outcomes_that_are_neither_leave_the_circuit_alone(accounts: AccountState) -> None:
    for _ in range(5):
        accounts.record_outcome("a", "list_images", "token_error", "neither", POLICY)
    assert not accounts.health("a", now=0.0).open


def test_one_probe_task_per_account(accounts: AccountState) -> None:
    assert accounts.schedule_probe("a", 5)
    assert not accounts.schedule_probe("a", 5)
    assert accounts.schedule_probe("a", 5, renew=True)  # the probe task schedules its successor
    assert accounts.schedule_probe("b", 5)


def test_a_hold_refuses_every_token_says_why_and_ends_by_itself(accounts: AccountState) -> None:
    def verdict(account: str) -> tuple[str, str]:
        token = accounts.take_token(account, rate=100, burst=100, max_wait=1)
        return token.verdict, token.why

    assert verdict("a") == ("go", "")
    accounts.hold("a", "APIGW.0301 incorrect IAM authentication information", seconds=1)
    assert verdict("a") == ("held", "APIGW.0301 incorrect IAM authentication information")
    assert verdict("b") == ("go", "")
    wait_until(lambda: verdict("a") == ("go", ""), 5, "the hold to expire")


def test_durations_keep_the_latest_copies_newest_first(accounts: AccountState) -> None:
    for n in range(DURATION_SAMPLES + 5):
        accounts.record_duration("a", 1000 + n, 10.0 + n)
    samples = accounts.durations("a")
    assert len(samples) == DURATION_SAMPLES
    assert samples[0] == (1000 + DURATION_SAMPLES + 4, 10.0 + DURATION_SAMPLES + 4)
    assert accounts.durations("b") == []
