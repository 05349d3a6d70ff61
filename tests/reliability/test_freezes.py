"""A frozen worker (issue 25): its whole process group SIGSTOPped twice mid-batch, each time for longer than the task
time limits, the submit lease and the visibility timeout, then resumed. On waking, the pool's time limits fire at
once (the processes still running a task are killed, or interrupted by the soft limit and go on to other tasks):
nothing is lost, copied twice or left stuck, no slot stays held and no submit lock outlives its task.

The freeze lasts ``IMSREP_RELIABILITY_FREEZE_SECONDS`` (12 s by default: past the tier's hard time limit, 6 s, and
visibility timeout, 10 s; the issue's run froze for 25 s). Ten runs in a row, as docs/reliability.md reports them:
``for i in $(seq 10); do .venv/bin/pytest tests/reliability/test_freezes.py || break; done``.
"""

from __future__ import annotations

import os
import time

import pytest

from cli.processes import wait_until
from worker.domain.states import ItemState

pytestmark = pytest.mark.integration

ITEMS = 100
SLOT_LIMIT = 5
FREEZE_ENV = "IMSREP_RELIABILITY_FREEZE_SECONDS"
FROZEN = float(os.environ.get(FREEZE_ENV, "12"))


def _freeze(c, item_ids: list[str]) -> int:
    """SIGSTOP the worker for ``FROZEN`` seconds; how many items ended meanwhile (none can: it is the only one)."""
    ended = c.terminal(item_ids)
    c.stack.pause("worker")
    stopped = time.monotonic()
    try:

        def thawed() -> bool:  # the fault's own length; everything else stays up meanwhile
            c.assert_running()
            return time.monotonic() - stopped >= FROZEN

        wait_until(thawed, FROZEN + 30, "the freeze to last its time", interval=0.5)
        return c.terminal(item_ids) - ended
    finally:
        c.stack.resume("worker")


@pytest.mark.timeout(2 * FROZEN + 240)
def test_worker_sigstopped_past_its_time_limits_twice_mid_batch(cluster, record) -> None:
    c = cluster(copy_seconds=0.5)
    sources = c.sources(ITEMS)
    item_ids = c.submit(sources)["item_ids"]
    ended_while_frozen, ended_at_freeze = [], []
    for share in (ITEMS // 5, ITEMS // 2):  # a fifth done, then half: copies and submits in flight at each freeze
        wait_until(lambda n=share: c.terminal(item_ids) >= n, 90, f"{share} items to end", interval=0.2)
        ended_at_freeze.append(c.terminal(item_ids))
        ended_while_frozen.append(_freeze(c, item_ids))
    finished = c.wait_terminal(item_ids, timeout=150)
    log = c.worker_log()
    figures = {
        **c.outcome(item_ids, sources),
        "submit_locks_left": len(c.redis().keys(c.data().keys.submit_lock("*"))),
        "terminal_at_each_freeze": ended_at_freeze,
        "ended_while_frozen": sum(ended_while_frozen),
        "soft_time_limits": log.count("Soft time limit ("),
        "hard_time_limits": log.count("Hard time limit ("),
        "leases_released_for_holders": log.count("released for a holder that left it behind"),
    }
    env = f"{FREEZE_ENV}={FROZEN:g}" if FREEZE_ENV in os.environ else ""
    record(f"worker SIGSTOP {FROZEN:.0f} s x2", f"SIGSTOP of the worker's process group for {FROZEN:.0f} s, twice "
           "mid-batch (past the time limits, the submit lease and the visibility timeout), then SIGCONT", figures,
           env=env)  # fmt: skip
    assert finished, figures
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stuck"] == 0, figures
    assert figures["by_state"] == {ItemState.SUCCEEDED.value: ITEMS}, figures
    assert figures["slots_held_at_end"] == 0 and figures["peak_concurrent_jobs"] <= SLOT_LIMIT, figures
    assert figures["submit_locks_left"] == 0 and figures["ended_while_frozen"] == 0, figures
