"""``imsrep item`` against a real API: one item's fields, history and next step; its exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli.item_view import item_view
from cli.main import EXIT_OK, EXIT_SOME_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, app
from cli.processes import free_port
from tests.support import walk_to
from worker.domain.reasons import ReasonCode, next_step
from worker.domain.states import ItemState

IMG = "0b6c3e52-6b0a-4bd4-8a70-4c0ec2f6a9b1"
NEW_IMG = "5c1d7e0a-2f3b-4c8d-9e6f-7a8b9c0d1e2f"
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough that no cell is folded: the assertions read whole sentences. Through COLUMNS, which rich reads
    at each print: setting the console's width would outlive the test (undoing it fixes the width it had)."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def api(api_server) -> list[str]:
    return ["--api", api_server.url, "--token", api_server.token]


def _submit(tmp_path: Path, api: list[str], rows: list[dict]) -> tuple[str, list[str]]:
    """Submit ``rows`` as a JSON manifest (one row a line, so row i is on line i + 2); the batch and item IDs."""
    manifest = tmp_path / "m.json"
    manifest.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    submitted = runner.invoke(app, ["submit", str(manifest), *api])
    assert submitted.exit_code == EXIT_OK, submitted.output
    batch_id = re.search(r"in batch ([0-9a-f]{32})", submitted.stdout).group(1)
    shown = json.loads(runner.invoke(app, ["status", batch_id, "--json", *api]).stdout)
    return batch_id, [i["item_id"] for i in shown["items"]]


def test_a_waiting_item_says_what_it_waits_for(tmp_path: Path, api, api_server) -> None:
    batch_id, [item_id] = _submit(tmp_path, api, [{"image_id": IMG, "name": "web-copy", "tags": {"team": "web"}}])
    walk_to(api_server.store(), item_id, ItemState.WAITING, target_name="web-copy", source_name="web")

    shown = runner.invoke(app, ["item", item_id, *api])
    assert shown.exit_code == EXIT_SOME_FAILED, shown.output  # not succeeded (yet)
    out = shown.stdout
    assert f"Item {item_id}" in out and f"{batch_id}, line 2 of its manifest" in out
    assert f"{IMG} (web)" in out and "web-copy" in out and "team=web" in out
    assert "none: an unencrypted copy" in out and "the account's own region and project" in out
    assert "waiting" in out and "slots: every slot is busy with imsrep's own copies" in out
    assert "Next step" not in out and "IMS job" not in out


def test_a_succeeded_item_shows_its_ims_job_and_history(tmp_path: Path, api, api_server) -> None:
    _, [item_id] = _submit(tmp_path, api, [{"image_id": IMG, "kms_key": "ims/default"}])
    store = api_server.store()
    walk_to(store, item_id, ItemState.REPLICATING, job_id="ff80808188f0f0f00188f0f0f0f00001",
            job_started_at=1_700_000_000.0, target_name="copy_cn-north-4_web")  # fmt: skip
    walk_to(store, item_id, ItemState.SUCCEEDED, new_image_id=NEW_IMG, progress=1.0)

    shown = runner.invoke(app, ["item", item_id, *api])
    assert shown.exit_code == EXIT_OK, shown.output
    out = shown.stdout
    assert "ff80808188f0f0f00188f0f0f0f00001, 100 %, started 2023-11-14 22:13:20" in out
    assert NEW_IMG in out and "ims/default" in out and "the default: copy_cn-north-4_web" in out
    history = out[out.index("History") :]
    states = ["accepted", "validating", "waiting", "submitting", "replicating", "succeeded"]
    assert [s for s in re.findall(r"\b[a-z]+\b", history) if s in states] == states

    as_json = runner.invoke(app, ["item", item_id, "--json", *api])
    assert as_json.exit_code == EXIT_OK
    record = json.loads(as_json.stdout)
    assert record["item_id"] == item_id and record["line"] == 2 and record["next_step"] is None
    assert [t["state"] for t in record["history"]] == states


def test_a_rejected_item_says_why_and_what_to_do(tmp_path: Path, api, api_server) -> None:
    _, [item_id] = _submit(tmp_path, api, [{"image_id": IMG, "kms_key": "old-key"}])
    message = "KMS key 'old-key' is not enabled (key_state [3])"  # brackets stay text, not rich markup
    walk_to(api_server.store(), item_id, ItemState.REJECTED, reason=ReasonCode.KEY_DISABLED, message=message)

    shown = runner.invoke(app, ["item", item_id, *api])
    assert shown.exit_code == EXIT_SOME_FAILED
    assert f"KEY_DISABLED: {message}" in shown.stdout
    assert next_step(ReasonCode.KEY_DISABLED) in shown.stdout
    assert "imsrep retry" not in shown.stdout  # a rejected item is submitted again, not retried


def test_a_failed_item_names_the_retry_command(tmp_path: Path, api, api_server) -> None:
    batch_id, [item_id] = _submit(tmp_path, api, [{"image_id": IMG}])
    walk_to(api_server.store(), item_id, ItemState.FAILED, reason=ReasonCode.IMS_JOB_FAILED, message="job failed")
    shown = runner.invoke(app, ["item", item_id, *api])
    assert shown.exit_code == EXIT_SOME_FAILED
    assert next_step(ReasonCode.IMS_JOB_FAILED) in shown.stdout and f"imsrep retry {batch_id}" in shown.stdout


def test_an_unknown_item_is_one_line_naming_it_and_exit_2(api) -> None:
    unknown = "0" * 32
    shown = runner.invoke(app, ["item", unknown, *api])
    assert shown.exit_code == EXIT_USAGE
    assert len(shown.stderr.strip().splitlines()) == 1 and unknown in shown.stderr and "(404)" in shown.stderr
    assert "Traceback" not in shown.output
    # Neither a malformed ID nor one shaped like a path (which must not reach GET /v1/batches) is a traceback.
    for bad in ("not-an-id", "../batches", ".."):
        shown = runner.invoke(app, ["item", bad, *api])
        assert shown.exit_code == EXIT_USAGE and len(shown.stderr.strip().splitlines()) == 1, (bad, shown.output)


def test_an_unreachable_api_is_exit_3() -> None:
    shown = runner.invoke(app, ["item", "0" * 32, "--api", f"http://127.0.0.1:{free_port()}", "--token", "t"])
    assert shown.exit_code == EXIT_UNREACHABLE and "API unreachable" in shown.stderr


def test_an_item_names_its_receivers_and_a_receiver_its_parent() -> None:
    base = {"batch_id": "b" * 32, "account": "golden", "mode": "in-region", "image_id": "img", "state": "succeeded"}
    parent = {**base, "item_id": "p" * 32, "distribute": [{"account": "team-a"}, {"account": "team-b"}]}
    receiver = {**base, "item_id": "r" * 32, "account": "team-a", "parent_id": "p" * 32}
    console = Console(record=True, width=200)
    console.print(item_view(parent), item_view(receiver))
    rows = [[cell.strip() for cell in line.split("│")[1:3]] for line in console.export_text().splitlines()]
    assert ["Distribute to", "team-a, team-b"] in rows and ["Receiver of", "p" * 32] in rows
