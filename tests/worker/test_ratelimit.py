"""The limiter's client hooks: every request takes a token from the shared bucket; every answer is counted."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from cli.processes import wait_until
from config.settings import AccountSettings, load_settings
from worker.errors import AuthenticationError
from worker.ratelimit import CircuitOpen, RateLimited, RateLimitHooks, outcome_kind

SETTINGS = load_settings()


def _account(**limits: float) -> AccountSettings:
    return AccountSettings(project_id="0" * 32, access_key="ak12", secret_key="sk12", **limits)


def test_rate_is_kept_across_clients_and_threads(redis_server) -> None:
    rate, burst, seconds = 50.0, 10, 1.5
    prefix = f"t{uuid.uuid4().hex[:8]}"  # one bucket, each thread on its own connection
    granted = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal granted
        account = _account(request_rate=rate, request_burst=burst)
        hooks = RateLimitHooks(redis_server.data(prefix), "acct", account, SETTINGS)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                hooks.before_request("ims.get_image")
            except RateLimited as exc:
                assert exc.retry_after and exc.retry_after > 0
                time.sleep(min(exc.retry_after, 0.01))
                continue
            if time.monotonic() < end:
                with lock:
                    granted += 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    allowed = burst + rate * seconds
    assert allowed * 0.8 <= granted <= allowed + 3


def test_a_held_account_sends_nothing_until_the_hold_ends(redis_server) -> None:
    data = redis_server.data(f"t{uuid.uuid4().hex[:8]}")
    hooks = RateLimitHooks(data, "acct", _account(), SETTINGS)
    data.accounts.hold("acct", "APIGW.0301 incorrect IAM authentication information", seconds=60)
    with pytest.raises(AuthenticationError, match="refused recently: APIGW.0301") as refused:
        hooks.before_request("copy")
    assert refused.value.endpoint is None  # not the cloud's refusal: nothing to hold again
    assert RateLimitHooks(data, "other", _account(), SETTINGS).before_request("copy") is None


def test_after_response_counts_outcomes(redis_server) -> None:
    data = redis_server.data()
    hooks = RateLimitHooks(data, "acct", _account(), SETTINGS)
    hooks.after_response("copy", "200")
    hooks.after_response("copy", "200")
    assert data.telemetry.ims_outcomes() == {("copy", "200"): 2}


def test_answers_while_the_circuit_is_clean_are_only_counted_until_the_task_ends(redis_server) -> None:
    data = redis_server.data(f"t{uuid.uuid4().hex[:8]}")
    hooks = RateLimitHooks(data, "acct", _account(), SETTINGS)
    hooks.before_request("copy")
    hooks.after_response("copy", "200")
    assert data.telemetry.ims_outcomes() == {}  # nothing for the circuit to hear: only counted, in the process
    hooks.before_request("job")
    hooks.after_response("job", "503")  # a failure: the circuit hears it at once
    assert data.accounts.health("acct", time.time()).failures == 1
    hooks.before_request("job")
    assert not hooks.clean  # a failure is counted: the next answer must reset it
    hooks.after_response("job", "200")
    assert data.accounts.health("acct", time.time()).failures == 0
    hooks.before_request("copy")
    hooks.after_response("copy", "IMG.0060")  # a refusal is an answer too
    data.flush()  # as a task's end does
    assert data.telemetry.ims_outcomes() == {
        ("copy", "200"): 1,
        ("job", "503"): 1,
        ("job", "200"): 1,
        ("copy", "IMG.0060"): 1,
    }


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        ("200", "answer"),
        ("IMG.0060", "answer"),
        ("401", "answer"),
        ("503", "transient"),
        ("500", "transient"),
        ("429", "transient"),
        ("timeout", "transient"),
        ("connection_error", "transient"),
        ("malformed", "transient"),
        ("token_error", "neither"),
    ],
)
def test_what_counts_as_the_cloud_answering(outcome: str, kind: str) -> None:
    assert outcome_kind(outcome) == kind


def test_an_outage_holds_requests_back_until_a_probe_gets_an_answer(redis_server) -> None:
    settings = load_settings(circuit_failures=2, probe_interval=0.2, probe_max_interval=1.0)
    hooks = RateLimitHooks(redis_server.data(), "acct", _account(request_rate=100, request_burst=100), settings)
    for _ in range(2):
        hooks.before_request("job")
        hooks.after_response("job", "504")
    with pytest.raises(CircuitOpen) as held:
        hooks.before_request("job")
    assert 0 < held.value.retry_after <= 0.2
    wait_until(lambda: _probe_allowed(hooks), 5, "the probe's turn")
    hooks.after_response("quota", "200")  # the probe got an answer: the outage is over
    hooks.before_request("job")


def _probe_allowed(hooks: RateLimitHooks) -> bool:
    try:
        hooks.before_request("quota")
    except CircuitOpen:
        return False
    return True


def test_each_step_thread_keeps_its_own_tokens_verdict_and_answers_time_the_round_trip(redis_server) -> None:
    data = redis_server.data(f"t{uuid.uuid4().hex[:8]}")
    hooks = RateLimitHooks(data, "acct", _account(), SETTINGS)
    hooks.before_request("job")
    hooks.after_response("job", "503")  # a failure counted: this thread's next token is not clean
    hooks.before_request("job")
    other = threading.Thread(target=hooks.before_request, args=("copy",))  # a clean token on another thread
    other.start()
    other.join()
    assert not hooks.clean  # this thread's answer still goes to the circuit
    time.sleep(0.05)  # the request's time on the wire
    hooks.after_response("job", "200")
    assert data.accounts.health("acct", time.time()).failures == 0
    assert hooks.round_trip.seconds >= 0.05
