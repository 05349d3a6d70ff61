"""``imsrep audit``: the trail as a table or JSON, its filters passed to the API, and a bad filter as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import EXIT_OK, EXIT_USAGE, app

IMG = "0b6c3e52-6b0a-4bd4-8a70-4c0ec2f6a9b1"
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")  # tests/cli/conftest.py


def _api(server) -> list[str]:
    return ["--api", server.url, "--token", server.token]


def test_audit_shows_the_calls_newest_first_filtered(tmp_path: Path, api_server) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"image_id\n{IMG}\n")
    submitted = runner.invoke(app, ["submit", str(manifest), "--resubmit", *_api(api_server)])
    batch_id = submitted.stdout.split("batch ")[1].split()[0]
    assert runner.invoke(app, ["cancel", batch_id, *_api(api_server)]).exit_code == EXIT_OK

    shown = runner.invoke(app, ["audit", "--batch", batch_id, "--json", *_api(api_server)])
    assert shown.exit_code == EXIT_OK, shown.output
    records = json.loads(shown.stdout)
    assert [(r["action"], r["outcome"], r["batch_id"]) for r in records] == [
        ("batch.cancel", "ok", batch_id),
        ("batch.submit", "ok", batch_id),
    ]
    newest = runner.invoke(app, ["audit", "--batch", batch_id, "--limit", "1", "--json", *_api(api_server)])
    assert [r["action"] for r in json.loads(newest.stdout)] == ["batch.cancel"]
    only = ["--action", "batch.submit", "--outcome", "ok", "--principal", "api-token-1", "--since", "2000-01-01"]
    filtered = runner.invoke(app, ["audit", *only, "--batch", batch_id, "--json", *_api(api_server)])
    assert [r["action"] for r in json.loads(filtered.stdout)] == ["batch.submit"]

    table = runner.invoke(app, ["audit", "--batch", batch_id, *_api(api_server)], env={"COLUMNS": "300"})
    assert table.exit_code == EXIT_OK and "Audit trail, newest first" in table.stdout
    assert "batch.cancel" in table.stdout and batch_id in table.stdout


def test_a_bad_filter_is_one_line_naming_it(api_server) -> None:
    refused = runner.invoke(app, ["audit", "--outcome", "fine", *_api(api_server)])
    assert refused.exit_code == EXIT_USAGE and "(422)" in refused.stderr and "outcome" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
