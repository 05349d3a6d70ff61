"""What ``imsrep plan`` works out locally from its requests, beside what the API answers."""

from __future__ import annotations

import pytest
import typer
from rich.console import Console

from cli import campaign
from cli.planning import PlanOutcome, distribution_note, share_targets, verdicts_table


def test_share_targets_come_from_the_items_or_the_selectors_template() -> None:
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    manifest = {"items": [{"image_id": "x", "share_with": [b, a]}, {"image_id": "y"}, {"share_with": [a]}]}
    selector = {"selector": {"fast_create": False}, "template": {"share_with": [c]}}
    assert share_targets([manifest]) == [a, b]
    assert share_targets([manifest, selector]) == [a, b, c]
    assert share_targets([{"items": [{"image_id": "x"}]}, {"selector": {}, "template": None}]) == []


def test_receivers_come_from_distribute_options_and_a_plan_shows_where_each_copy_would_go() -> None:
    given = ["team-a:ims/team-a", "south@cn-south-1", "team-b"]
    receivers = [{"account": "team-a", "key": "ims/team-a"}, {"account": "south", "region": "cn-south-1"},
                 {"account": "team-b"}]  # fmt: skip
    assert campaign.template(None, None, None, False, None, None, distribute=given, withdraw_share=True) == {
        "distribute": receivers,
        "withdraw_share": True,
    }
    with pytest.raises(typer.BadParameter, match="ACCOUNT"):
        campaign.receivers([":ims/default"])

    copy = {"index": 0, "image_id": "x", "verdict": "copy", "target_name": "web-golden", "receivers": receivers}
    refused = {"index": 1, "image_id": "y", "verdict": "refused", "reason": "ISO_IMAGE", "receivers": receivers}
    outcome = PlanOutcome(verdicts=[copy, refused])
    assert distribution_note(outcome) == (
        "1 copy would be distributed: 3 receivers' copies in south, team-a, team-b; each receiver's key and quota "
        "are judged when its copy is made."
    )
    assert distribution_note(PlanOutcome(verdicts=[refused])) is None
    console = Console(width=200, record=True)
    console.print(verdicts_table([copy], "Every item"))
    shown = console.export_text()  # and cleared
    assert "Receivers" in shown and "team-a key ims/team-a, south/cn-south-1, team-b" in shown
    console.print(verdicts_table([{**copy, "receivers": None}], "Every item"))
    assert "Receivers" not in console.export_text()  # no column when nothing distributes
