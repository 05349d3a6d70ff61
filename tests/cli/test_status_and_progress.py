"""``imsrep status --failed/--results`` against a real API, and the progress bar's rate column."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from cli.main import EXIT_SOME_FAILED, app
from cli.progress import RateColumn, distributions_table
from tests.support import walk_to
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState

IMG = "0b6c3e52-6b0a-4bd4-8a70-4c0ec2f6a9b1"
runner = CliRunner()


def _submit(tmp_path: Path, api: list[str], count: int) -> str:
    manifest = tmp_path / f"m{count}.json"
    manifest.write_text(json.dumps([{"image_id": IMG, "name": f"copy-{i}"} for i in range(count)]))
    submitted = runner.invoke(app, ["submit", str(manifest), *api])
    assert submitted.exit_code == 0, submitted.output
    return re.search(r"in batch ([0-9a-f]{32})", submitted.stdout).group(1)


def test_status_failed_shows_only_items_that_ended_without_a_copy(tmp_path: Path, api_server) -> None:
    api = ["--api", api_server.url, "--token", api_server.token]
    ended = _submit(tmp_path, api, 2)
    assert runner.invoke(app, ["cancel", ended, *api]).exit_code == 0
    running = _submit(tmp_path, api, 1)  # no worker here: it stays accepted

    shown = runner.invoke(app, ["status", ended, "--failed", "--json", "--results", str(tmp_path / "r.csv"), *api])
    assert shown.exit_code == EXIT_SOME_FAILED
    assert [i["state"] for i in json.loads(shown.stdout)["items"]] == ["cancelled", "cancelled"]
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0].startswith("line,item_id,image_id,state") and len(rows) == 3 and "CANCELLED" in rows[1]

    pending = runner.invoke(app, ["status", running, "--failed", "--json", *api])
    assert pending.exit_code == EXIT_SOME_FAILED and json.loads(pending.stdout)["items"] == []


def test_status_failed_also_shows_a_copy_whose_sharing_failed(tmp_path: Path, api_server) -> None:
    api = ["--api", api_server.url, "--token", api_server.token]
    batch = _submit(tmp_path, api, 3)
    ids = [i["item_id"] for i in json.loads(runner.invoke(app, ["status", batch, "--json", *api]).stdout)["items"]]
    store = api_server.store()
    walk_to(store, ids[0], ItemState.SUCCEEDED, new_image_id="img-copy-0")
    walk_to(store, ids[1], ItemState.SUCCEEDED, new_image_id="img-copy-1", reason=ReasonCode.NOT_SHARED)
    walk_to(store, ids[2], ItemState.VALIDATING)  # still under way: not shown

    shown = runner.invoke(app, ["status", batch, "--failed", "--json", *api])
    assert shown.exit_code == EXIT_SOME_FAILED
    assert [(i["item_id"], i["reason"]) for i in json.loads(shown.stdout)["items"]] == [(ids[1], "NOT_SHARED")]


def test_status_results_match_each_item_to_its_manifest_line_and_json_carries_history(
    tmp_path: Path, api_server
) -> None:
    api = ["--api", api_server.url, "--token", api_server.token]
    manifest = tmp_path / "lines.csv"
    manifest.write_text(f"image_id,name\n{IMG},first\nnot-an-id,bad\n\n{IMG},third\n")  # rows on lines 2 and 5
    submitted = runner.invoke(app, ["submit", str(manifest), *api])
    batch = re.search(r"in batch ([0-9a-f]{32})", submitted.stdout).group(1)

    results = tmp_path / "r.csv"
    shown = runner.invoke(app, ["status", batch, "--json", "--results", str(results), *api])
    assert shown.exit_code == EXIT_SOME_FAILED  # not done: no worker runs here
    with results.open() as f:
        rows = list(csv.DictReader(f))
    items = json.loads(shown.stdout)["items"]
    assert [(r["line"], r["item_id"]) for r in rows] == [("2", items[0]["item_id"]), ("5", items[1]["item_id"])]
    assert [i["line"] for i in items] == [2, 5]
    assert [[t["state"] for t in i["history"]] for i in items] == [["accepted"], ["accepted"]]


def test_results_csv_cells_a_spreadsheet_would_run_start_with_a_quote(tmp_path: Path, api_server) -> None:
    """From the manifest (an image ID submit reports as invalid) and from the API (an item's message)."""
    api = ["--api", api_server.url, "--token", api_server.token]
    formula = '=HYPERLINK("http://x","y")'
    manifest = tmp_path / "m.json"
    manifest.write_text("[\n" + ",\n".join(json.dumps({"image_id": i}) for i in (IMG, formula)) + "\n]\n")  # lines 2, 3
    submitted = runner.invoke(app, ["submit", str(manifest), "--results", str(tmp_path / "s.csv"), *api])
    assert submitted.exit_code == EXIT_SOME_FAILED, submitted.output
    with (tmp_path / "s.csv").open(newline="") as f:
        assert [(r["line"], r["image_id"]) for r in csv.DictReader(f)] == [("2", IMG), ("3", f"'{formula}")]

    batch = re.search(r"in batch ([0-9a-f]{32})", submitted.stdout).group(1)
    (item,) = json.loads(runner.invoke(app, ["status", batch, "--json", *api]).stdout)["items"]
    walk_to(api_server.store(), item["item_id"], ItemState.FAILED, reason=ReasonCode.IMS_JOB_FAILED, message=formula)
    shown = runner.invoke(app, ["status", batch, "--results", str(tmp_path / "r.csv"), *api])
    assert shown.exit_code == EXIT_SOME_FAILED, shown.output
    with (tmp_path / "r.csv").open(newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["message"] == f"'{formula}" and row["reason"] == "IMS_JOB_FAILED"


def test_rate_column_shows_items_per_minute() -> None:
    now = [0.0]
    progress = Progress(RateColumn(), console=Console(record=True, width=40), get_time=lambda: now[0])
    task = progress.add_task("", total=100)
    assert progress.columns[0].render(progress.tasks[task]).plain == ""  # no rate before anything finished
    for _ in range(6):
        now[0] += 10.0
        progress.advance(task)
    assert progress.columns[0].render(progress.tasks[task]).plain == "6.0/min"


def test_watch_shows_each_distribution_as_a_tree_of_its_receivers_verdicts() -> None:
    receivers = [
        {"account": "team-a", "region": "cn-north-4", "project_id": "a1" * 16, "state": "succeeded",
         "new_image_id": "own-a", "key": "ims/a", "tags": {"team": "a"}, "reason": None},
        {"account": "team-c", "region": "cn-north-4", "project_id": "c3" * 16, "state": "rejected",
         "new_image_id": None, "key": "ims/none", "tags": None, "reason": "KEY_NOT_FOUND"},
    ]  # fmt: skip
    parent = {"item_id": "p" * 32, "state": "succeeded", "new_image_id": "shared",
              "followups": {"distribute": {"receivers": receivers}}}  # fmt: skip
    assert distributions_table([{"item_id": "x", "state": "succeeded"}]) is None
    console = Console(record=True, width=200)
    console.print(distributions_table([parent]))
    lines = console.export_text().splitlines()
    assert any("├ team-a" in line and "own-a" in line and "ims/a" in line and "team=a" in line for line in lines)
    assert any("└ team-c" in line and "rejected" in line and "KEY_NOT_FOUND" in line for line in lines)
