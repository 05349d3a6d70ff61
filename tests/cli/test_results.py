"""The per-item results file: every column, in manifest order, as CSV or JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from cli.results import COLUMNS, INVALID, ItemResult, followups_summary, write_results

RESULTS = [
    ItemResult(line=3, item_id="b" * 32, image_id="img-2", state="rejected", reason="ISO_IMAGE", message="ISO"),
    ItemResult(line=4, item_id=None, image_id="bad", state=INVALID, message="image_id: must be a UUID"),
    ItemResult(line=2, item_id="a" * 32, image_id="img-1", state="succeeded", new_image_id="new-1"),
]


def test_csv_results(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_results(path, RESULTS)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [r["line"] for r in rows] == ["2", "3", "4"]
    assert rows[0] == {
        "line": "2",
        "item_id": "a" * 32,
        "image_id": "img-1",
        "state": "succeeded",
        "reason": "",
        "message": "",
        "new_image_id": "new-1",
        "target_region": "",
        "followups": "",
        "receiver_of": "",
        "account": "",
        "kms_key": "",
        "tags": "",
    }
    assert rows[2]["state"] == INVALID and rows[2]["item_id"] == ""


def test_json_results(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_results(path, RESULTS)
    rows = json.loads(path.read_text())
    assert [r["line"] for r in rows] == [2, 3, 4]
    assert rows[1]["reason"] == "ISO_IMAGE" and rows[0]["reason"] is None


def test_result_from_an_api_item() -> None:
    item = {
        "item_id": "c" * 32,
        "image_id": "img",
        "state": "failed",
        "reason": "IMS_JOB_FAILED",
        "message": "m",
        "new_image_id": None,
        "attempt": 1,
    }
    assert ItemResult.of(item, 7) == ItemResult(7, "c" * 32, "img", "failed", "IMS_JOB_FAILED", "m", None)
    # The item's own line (recorded at submission) when the caller knows none, e.g. imsrep status --results.
    assert ItemResult.of({**item, "line": 9}).line == 9 and ItemResult.of(item).line is None


def test_a_waiting_items_reason_is_what_holds_it() -> None:
    item = {"item_id": "c" * 32, "image_id": "img", "state": "waiting", "reason": None, "blocked_by": "quota"}
    assert ItemResult.of(item).reason == "quota"
    assert ItemResult.of({**item, "blocked_by": None}).reason is None


def test_a_copys_tags_and_sharing_in_a_few_words() -> None:
    friend = "0" * 31 + "1"
    item = {
        "item_id": "d" * 32, "image_id": "img", "state": "succeeded", "reason": "NOT_SHARED", "message": "m",
        "new_image_id": "new", "target_region": "cn-south-1",
        "followups": {
            "tags": {"status": "applied", "wanted": {"a": "1", "b": "2"}, "applied": {"a": "1", "b": "2"},
                     "not_applied": {}},
            "share": {"status": "failed", "wanted": [friend, "f" * 32], "members": [
                {"project_id": friend, "status": "pending"}], "not_shared": ["f" * 32]},
        },
    }  # fmt: skip
    result = ItemResult.of(item)
    assert result.target_region == "cn-south-1" and not result.complete
    assert result.followups == f"tags applied (2); shared with {friend} (pending); not shared with {'f' * 32}"
    failed_tags = {"tags": {"status": "failed", "not_applied": {"k": "v"}}}
    assert followups_summary(failed_tags) == "tags not applied: k=v"
    assert ItemResult.of({**item, "reason": None, "followups": None}).complete


def test_csv_cells_a_spreadsheet_would_run_are_text_and_json_keeps_them(tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://x","y")'
    results = [ItemResult(line=2, item_id=None, image_id=formula, state=INVALID, message="-1+2", followups="@x")]
    write_results(tmp_path / "r.csv", results)
    with (tmp_path / "r.csv").open(newline="") as f:
        (row,) = csv.DictReader(f)
    assert (row["line"], row["image_id"], row["message"], row["followups"]) == ("2", f"'{formula}", "'-1+2", "'@x")
    write_results(tmp_path / "r.json", results)
    assert json.loads((tmp_path / "r.json").read_text())[0]["image_id"] == formula


def test_a_distribution_says_who_has_a_copy_and_each_receiver_is_a_row_naming_its_parent() -> None:
    verdicts = [
        {"account": "team-a", "state": "succeeded", "reason": None},
        {"account": "team-c", "state": "rejected", "reason": "KEY_NOT_FOUND"},
    ]
    followups = {"distribute": {"status": "failed", "receivers": verdicts, "withdrawn": False}}
    assert followups_summary(followups) == "distributed to 1 of 2 (team-c: KEY_NOT_FOUND)"
    done = {"distribute": {"status": "applied", "receivers": verdicts[:1], "withdrawn": True}}
    assert followups_summary(done) == "distributed to 1 of 1; share withdrawn"
    receiver = {"item_id": "d" * 32, "image_id": "shared", "state": "succeeded", "line": 2, "parent_id": "a" * 32}
    row = ItemResult.of({**receiver, "account": "team-a", "kms_key": "ims/a", "tags": {"team": "a", "env": "p"}})
    assert (row.line, row.receiver_of, row.account) == (2, "a" * 32, "team-a")
    assert (row.kms_key, row.tags) == ("ims/a", "team=a;env=p")
