"""/healthz and /readyz: the process, Redis and the workers' heartbeats."""

from __future__ import annotations

import time

import httpx


def test_healthz_says_the_process_is_up(api) -> None:
    response = httpx.get(f"{api.url}/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_follows_worker_heartbeats(api) -> None:
    heartbeats = f"{api.prefix}:workers"
    r = api.redis()
    r.delete(heartbeats)
    none = httpx.get(f"{api.url}/readyz")
    assert none.status_code == 503 and "no worker heartbeat in the last 60s" in none.json()["detail"]
    assert none.headers["content-type"] == "application/problem+json"

    r.zadd(heartbeats, {"worker-old@host": time.time() - 600})
    assert httpx.get(f"{api.url}/readyz").status_code == 503  # a heartbeat too old does not count

    r.zadd(heartbeats, {"worker-1@host": time.time(), "worker-2@host": time.time() - 5})
    ready = httpx.get(f"{api.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "workers": 2}
    r.delete(heartbeats)
