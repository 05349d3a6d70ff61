"""The cluster-wide token bucket against a real Redis server, shared by several clients and threads."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from config.settings import AccountSettings
from worker.ratelimit import RateLimited, RateLimitHooks, TokenBucket


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def test_burst_then_refusal_with_a_wait(redis_server, prefix) -> None:
    bucket = TokenBucket(redis_server.client(), prefix, max_wait=0)
    assert [bucket.take("a", 1.0, 3) for _ in range(3)] == [0, 0, 0]
    wait = bucket.take("a", 1.0, 3)
    assert -1.01 < wait < -0.9  # refused: about one second until the next token
    assert bucket.take("b", 1.0, 3) == 0  # another account has its own bucket


def test_short_waits_are_reserved_not_refused(redis_server, prefix) -> None:
    bucket = TokenBucket(redis_server.client(), prefix, max_wait=0.5)
    assert bucket.take("a", 10.0, 1) == 0
    first, second = bucket.take("a", 10.0, 1), bucket.take("a", 10.0, 1)
    assert 0 < first <= 0.1 and 0.1 < second <= 0.2  # each reserved its own future token


def test_rate_is_kept_across_clients_and_threads(redis_server, prefix) -> None:
    rate, burst, seconds = 50.0, 10, 1.5
    granted = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal granted
        hooks = RateLimitHooks(
            TokenBucket(redis_server.client(), prefix, max_wait=0.05),
            "acct",
            AccountSettings(
                project_id="0" * 32, access_key="ak12", secret_key="sk12", request_rate=rate, request_burst=burst
            ),
        )
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


def test_after_response_counts_outcomes(redis_server, prefix) -> None:
    client = redis_server.client()
    hooks = RateLimitHooks(
        TokenBucket(client, prefix),
        "acct",
        AccountSettings(project_id="0" * 32, access_key="ak12", secret_key="sk12"),
    )
    hooks.after_response("ims.copy_image", "ok")
    hooks.after_response("ims.copy_image", "ok")
    assert client.hget(f"{prefix}:ims:outcomes", "ims.copy_image:ok") == "2"
