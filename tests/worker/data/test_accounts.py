"""Per-account state against a real Redis server: the request-rate bucket, credential holds, copy durations."""

from __future__ import annotations

import pytest

from cli.processes import wait_until
from worker.data import AccountState
from worker.data.accounts import DURATION_SAMPLES


@pytest.fixture
def accounts(redis_server) -> AccountState:
    return redis_server.data().accounts


def test_burst_then_refusal_with_a_wait(accounts: AccountState) -> None:
    assert [accounts.take_token("a", 1.0, 3, 0) for _ in range(3)] == [0, 0, 0]
    wait = accounts.take_token("a", 1.0, 3, 0)
    assert -1.01 < wait < -0.9  # refused: about one second until the next token
    assert accounts.take_token("b", 1.0, 3, 0) == 0  # another account has its own bucket


def test_short_waits_are_reserved_not_refused(accounts: AccountState) -> None:
    assert accounts.take_token("a", 10.0, 1, 0.5) == 0
    first, second = accounts.take_token("a", 10.0, 1, 0.5), accounts.take_token("a", 10.0, 1, 0.5)
    assert 0 < first <= 0.1 and 0.1 < second <= 0.2  # each reserved its own future token


def test_a_hold_says_why_and_ends_by_itself(accounts: AccountState) -> None:
    assert accounts.held("a") is None
    accounts.hold("a", "APIGW.0301 incorrect IAM authentication information", seconds=1)
    assert accounts.held("a") == "APIGW.0301 incorrect IAM authentication information"
    assert accounts.held("b") is None
    wait_until(lambda: accounts.held("a") is None, 5, "the hold to expire")


def test_durations_keep_the_latest_copies_newest_first(accounts: AccountState) -> None:
    for n in range(DURATION_SAMPLES + 5):
        accounts.record_duration("a", 1000 + n, 10.0 + n)
    samples = accounts.durations("a")
    assert len(samples) == DURATION_SAMPLES
    assert samples[0] == (1000 + DURATION_SAMPLES + 4, 10.0 + DURATION_SAMPLES + 4)
    assert accounts.durations("b") == []
