"""The limiter's client hooks: every request takes a token from the shared bucket; every answer is counted."""

from __future__ import annotations

import threading
import time
import uuid

from config.settings import AccountSettings
from worker.ratelimit import RateLimited, RateLimitHooks


def _account(**limits: float) -> AccountSettings:
    return AccountSettings(project_id="0" * 32, access_key="ak12", secret_key="sk12", **limits)


def test_rate_is_kept_across_clients_and_threads(redis_server) -> None:
    rate, burst, seconds = 50.0, 10, 1.5
    prefix = f"t{uuid.uuid4().hex[:8]}"  # one bucket, each thread on its own connection
    granted = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal granted
        hooks = RateLimitHooks(redis_server.data(prefix), "acct", _account(request_rate=rate, request_burst=burst))
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


def test_after_response_counts_outcomes(redis_server) -> None:
    data = redis_server.data()
    hooks = RateLimitHooks(data, "acct", _account())
    hooks.after_response("copy", "200")
    hooks.after_response("copy", "200")
    assert data.telemetry.ims_outcomes() == {("copy", "200"): 2}
