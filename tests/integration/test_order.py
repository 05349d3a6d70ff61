"""Within a batch, items take slots in the order of its rows (README, "The cloud's limits"; issue 31): a 30-row
batch to one project, through the API on the real stack, starts its copies row by row."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

ROWS = 30  # six sets of the project's slots: the line forms
SLOTS = 5  # the account's slot limit (its default)
IMAGES = ["ubuntu-22.04-web", "centos-7-app", "debian-12-base", "centos-6-legacy"]


def _entered(stack: Stack, item_id: str) -> dict[str, datetime]:
    """When the item first entered each state, from its history."""
    history = stack.api.get(f"/v1/replications/{item_id}").json()["history"]
    return {entry["state"]: datetime.fromisoformat(entry["at"]) for entry in reversed(history)}


def test_a_batch_starts_its_copies_in_the_order_of_its_rows(stack: Stack) -> None:
    items = [{"image_id": stack.image_ids[IMAGES[i % len(IMAGES)]], "name": f"order-{i:02d}"} for i in range(ROWS)]
    accepted = stack.submit(items)
    status = stack.wait_done(accepted["batch_id"])
    assert status["counts"]["succeeded"] == ROWS, status["counts"]
    entered = [_entered(stack, item_id) for item_id in accepted["item_ids"]]
    started = [states["submitting"] for states in entered]
    assert max(states["waiting"] for states in entered) < min(started)  # every row waited in line
    by_start = sorted(range(ROWS), key=started.__getitem__)
    # Slots go row by row. Two slots freed at once on two worker processes are granted in order, but their copies
    # may then start a few milliseconds apart either way: a row can start just ahead of a row granted with it
    # (in the same set of slots), never ahead of a row a whole set before it, which only a stall of the earlier
    # row's submit across two copies' time could do.
    ahead = [(row, later) for row in range(ROWS) for later in by_start[: by_start.index(row)] if later >= row + SLOTS]
    assert not ahead, by_start
