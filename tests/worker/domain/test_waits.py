"""The table of waits: every reason explained with a next step, and only a line of busy slots forecast."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from pathlib import Path

import pytest

from simulator.cli import simulator_command
from worker.domain.waits import WAITS, BlockedBy, hint, stalls

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_every_reason_has_a_next_step_and_a_hint() -> None:
    assert set(WAITS) == set(BlockedBy)
    for reason, wait in WAITS.items():
        assert wait.next_step and len(wait.next_step) <= 45, reason  # fits a status line
        assert len(hint(reason)) > len(wait.next_step), reason


def test_only_busy_slots_can_be_forecast() -> None:
    assert [b for b in BlockedBy if WAITS[b].forecast] == [BlockedBy.SLOTS]
    assert not stalls(None) and not stalls("slots")
    assert stalls("quota") and stalls("outage") and stalls("ims_full")
    assert stalls("something_newer")  # a newer API's reason: no ETA rather than a wrong one


def test_the_quota_hint_names_the_project_and_the_simulators_real_knob() -> None:
    said = hint(BlockedBy.QUOTA, project="ac234de25c6741d2b1273da49eea1b9e")
    assert "raise its IMS image quota" in said and "delete images" in said
    assert '/_sim/projects/ac234de25c6741d2b1273da49eea1b9e {"image_quota": N}' in said
    # The option and the call it names exist, and docs/simulator.md, which it points to, documents them.
    assert "--image-quota N" in said and "image_quota" in inspect.signature(simulator_command).parameters
    simulator_doc = (DOCS / "simulator.md").read_text()
    assert "`--image-quota N`" in simulator_doc and "POST /_sim/projects/{project_id}" in simulator_doc
    assert "<project_id>" in hint(BlockedBy.QUOTA)  # a pool without a project of its own


def test_the_outage_hint_says_when_the_next_probe_goes() -> None:
    at = datetime(2026, 3, 1, 12, 34, 56, tzinfo=timezone.utc).timestamp()
    assert hint(BlockedBy.OUTAGE, next_probe_at=at).endswith(
        "as soon as one is answered (next probe 12:34:56 UTC). Nothing to do but wait"
    )
    assert "next probe" not in hint(BlockedBy.OUTAGE)


@pytest.mark.parametrize("reason", list(BlockedBy))
def test_a_hint_has_no_placeholder_left(reason: BlockedBy) -> None:
    said = hint(reason, project="p" * 32, next_probe_at=0.0)
    assert "{project}" not in said and "{next_probe}" not in said and "{{" not in said
