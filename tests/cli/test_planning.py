"""What ``imsrep plan`` works out locally from its requests, beside what the API answers."""

from __future__ import annotations

from cli.planning import share_targets


def test_share_targets_come_from_the_items_or_the_selectors_template() -> None:
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    manifest = {"items": [{"image_id": "x", "share_with": [b, a]}, {"image_id": "y"}, {"share_with": [a]}]}
    selector = {"selector": {"fast_create": False}, "template": {"share_with": [c]}}
    assert share_targets([manifest]) == [a, b]
    assert share_targets([manifest, selector]) == [a, b, c]
    assert share_targets([{"items": [{"image_id": "x"}]}, {"selector": {}, "template": None}]) == []
