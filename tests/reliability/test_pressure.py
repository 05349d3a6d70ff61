"""Redis at its memory limit (``noeviction``) mid-batch (a minute for the table, 12 s in the suite): every process
rides it out by itself.

While Redis refuses writes the API answers 503 (and stores nothing), ``/readyz`` says why, workers and beat stay up
and lose no message, and each process logs the episode once; when Redis takes writes again, everything resumes
without a restart: nothing lost, copied twice or stuck, no slot leaked.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from cli.processes import wait_until
from worker.domain.states import ItemState

pytestmark = pytest.mark.integration

ITEMS = 100
SLOTS = 20
# Seconds Redis stays at its limit: 12 in the suite, longer than the tier's visibility timeout (10 s), its task time
# limit (6 s) and the cap of the backoff while Redis refuses writes (5 s); docs/reliability.md's row is the minute the
# issue asks for, with IMSREP_RELIABILITY_PRESSURE_SECONDS=60.
PRESSURE_ENV = "IMSREP_RELIABILITY_PRESSURE_SECONDS"
HELD = float(os.environ.get(PRESSURE_ENV, "12"))


def test_redis_at_its_memory_limit_mid_batch(cluster, record) -> None:
    c = cluster(
        copy_seconds=1.0,
        job_limit=SLOTS,
        workers=("w1", "w2"),
        sources=ITEMS + 10,
        env={"IMSREP_ACCOUNTS__DEFAULT__SLOT_LIMIT": str(SLOTS)},
    )
    sources = c.sources(ITEMS + 1)
    item_ids = c.submit(sources[:ITEMS])["item_ids"]
    wait_until(lambda: c.terminal(item_ids) >= ITEMS // 4, 90, "a quarter of the batch", interval=0.2)
    r = c.redis()
    used = int(r.info("memory")["used_memory"])
    # Well below what is used, so that what workers delete meanwhile does not bring it back under: Redis refuses
    # every write (and every command inside a MULTI) for the whole time.
    r.config_set("maxmemory", used // 2)
    limited = time.time()
    terminal_at_limit = c.terminal(item_ids)

    answers: Counter[str] = Counter()
    ready: Counter[str] = Counter()

    def observe() -> bool:
        """The API refuses to accept, /readyz says why, and every process stays up, the whole time."""
        c.assert_running()
        with c.api() as api:
            body, key = {"items": [{"image_id": sources[ITEMS]}]}, {"Idempotency-Key": f"p-{sources[ITEMS]}"}
            answers[str(api.post("/v1/batches", json=body, headers=key).status_code)] += 1
        readyz = httpx.get(f"{c.stack.info.api_url}/readyz", timeout=10)
        ready[f"{readyz.status_code} {readyz.json().get('detail', '')[:40]}"] += 1
        return time.time() - limited >= HELD

    wait_until(observe, HELD + 30, "the time at the memory limit to pass", interval=2.0)
    progressed_while_limited = c.terminal(item_ids) - terminal_at_limit
    in_flight = list(c.in_flight(item_ids)[0])
    r.config_set("maxmemory", 0)
    lifted = time.time()
    intake_s, probe_item, after = c.first_accepted(sources[ITEMS], lifted, 60)
    all_ids = [*item_ids, probe_item]
    finished = c.wait_terminal(all_ids, timeout=150)
    c.assert_running()  # nobody restarted anything
    telemetry = c.data().telemetry
    figures: dict[str, Any] = {
        **c.outcome(all_ids, sources),
        "refused_for_s": round(lifted - limited, 1),
        "api_answers_during": dict(answers),
        "readyz_during": dict(ready),
        "terminal_while_limited": progressed_while_limited,
        "intake_s": intake_s,
        "in_flight_after": len(in_flight),
        "resumed_s": c.wait_moved_on(in_flight, lifted, timeout=30),
        "refusal_log_lines": c.logs().count("Redis refuses writes"),
        "refusal_episodes": {p: n for p, (n, _s) in telemetry.refusals().items()},
        "all_done": finished,
    }
    what = f"maxmemory below used memory (noeviction: every write refused) for {HELD:.0f} s mid-batch, then lifted"
    env = f"{PRESSURE_ENV}={HELD:g}" if PRESSURE_ENV in os.environ else ""
    record("Redis at its memory limit", f"{what}; no restart", figures, env=env)
    assert finished and figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stuck"] == 0, figures
    assert figures["by_state"] == {ItemState.SUCCEEDED.value: ITEMS + 1}, figures
    assert figures["slots_held_at_end"] == 0 and figures["peak_concurrent_jobs"] <= SLOTS, figures
    assert set(answers) == {"503"} and all(k.startswith("503 Redis refuses writes") for k in ready), figures
    assert figures["resumed_s"] is not None, figures
    # One line per episode and process (the API, beat, each worker's main and pool processes), not per attempt.
    assert figures["refusal_log_lines"] <= 2 * (2 + 2 * 5), figures
