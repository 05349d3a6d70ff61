"""What holds a pool's line, decided from its slots, its account's circuit and its project's quota."""

from __future__ import annotations

from functools import partial

import pytest

from tests.support import pool_status
from worker.data import PoolStatus
from worker.data.accounts import Health
from worker.domain.pools import Pool
from worker.domain.waits import BlockedBy

POOL = Pool(name="default", account="default", limit=5, project="p" * 32)
OPEN = Health(open=True, failures=5, probe_at=1_000.0, outage_seconds=30.0)
line = partial(pool_status, POOL)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (line(), BlockedBy.SLOTS),
        (line(headroom=None), BlockedBy.SLOTS),  # the quota not read yet holds nothing
        (line(in_use=3, effective=3), BlockedBy.IMS_FULL),
        (line(headroom=0), BlockedBy.QUOTA),
        (line(headroom=0, in_use=3, effective=3), BlockedBy.QUOTA),  # no room: freed slots would not help
        (line(health=OPEN, headroom=0), BlockedBy.OUTAGE),  # nothing goes at all
    ],
)
def test_the_reason_that_holds_the_line_first(status: PoolStatus, reason: BlockedBy) -> None:
    assert status.wait_reason is reason and status.blocked_by is reason


def test_no_line_is_blocked_by_nothing_though_an_item_would_wait_for_the_quota() -> None:
    idle = line(queued=0, headroom=0)
    assert idle.blocked_by is None and idle.wait_reason is BlockedBy.QUOTA


def test_the_hint_names_the_pools_project_and_its_next_probe() -> None:
    assert f"/_sim/projects/{POOL.project} " in line(headroom=0).hint
    assert "(next probe 00:16:40 UTC)" in line(health=OPEN).hint
