"""/healthz and /readyz: the process, Redis and the workers' and beats' heartbeats."""

from __future__ import annotations

import time

import httpx


def test_healthz_says_the_process_is_up(api) -> None:
    response = httpx.get(f"{api.url}/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_follows_worker_and_beat_heartbeats(api) -> None:
    heartbeats, beats = f"{api.prefix}:workers", f"{api.prefix}:beats"
    r = api.redis()
    r.delete(heartbeats, beats)
    r.zadd(beats, {"beat@host:1": time.time()})
    none = httpx.get(f"{api.url}/readyz")
    assert none.status_code == 503 and "no worker heartbeat in the last 60s" in none.json()["detail"]
    assert none.headers["content-type"] == "application/problem+json"

    r.zadd(heartbeats, {"worker-old@host": time.time() - 600})
    assert httpx.get(f"{api.url}/readyz").status_code == 503  # a heartbeat too old does not count

    r.zadd(heartbeats, {"worker-1@host": time.time(), "worker-2@host": time.time() - 5})
    ready = httpx.get(f"{api.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "workers": 2, "beats": 1}

    # A dead beat (its last tick too old) is noticed: nothing would resend a lost step.
    r.zadd(beats, {"beat@host:1": time.time() - 600})
    no_beat = httpx.get(f"{api.url}/readyz")
    assert no_beat.status_code == 503 and "no beat heartbeat in the last 60s" in no_beat.json()["detail"]
    assert "imsrep_beats_seen 0.0" in httpx.get(f"{api.url}/metrics").text
    r.delete(heartbeats, beats)
