"""``imsrep policy …`` against a real API (no worker): each command's output and exit code."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import EXIT_OK, EXIT_USAGE, app

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMSREP_API_URL", raising=False)
    monkeypatch.delenv("IMSREP_API_TOKEN", raising=False)
    monkeypatch.setenv("IMSREP_STATE_DIR", str(tmp_path / "state"))


def _run(api_server, *args: str):
    return runner.invoke(app, ["policy", *args, "--api", api_server.url, "--token", api_server.token])


def test_a_policy_from_create_to_delete(api_server) -> None:
    made = _run(api_server, "create", "nightly", "--filter", "fast_create=false", "--every", "3600",
                "--name", "{name}-fc", "--tag", "team=web", "--keep-last", "2", "--retire", "delete")  # fmt: skip
    assert made.exit_code == EXIT_OK, made.output
    policy_id = re.search(r"created policy ([0-9a-f]{32}) \(nightly\)", made.output).group(1)

    shown = json.loads(_run(api_server, "show", policy_id).output)
    assert shown["selector"] == {"fast_create": False, "image_type": "private"}
    assert shown["template"] == {"name": "{name}-fc", "tags": {"team": "web"}, "decrypt": False}
    assert shown["retention"]["keep_last"] == 2 and shown["retention"]["action"] == "delete"
    listed = _run(api_server, "list")
    assert listed.exit_code == EXIT_OK and "nightly" in listed.output and "every 3600 s" in listed.output
    assert policy_id in [p["policy_id"] for p in json.loads(_run(api_server, "list", "--json").output)]

    assert _run(api_server, "update", policy_id, "--rename", "nightly-2", "--cron", "0 3 * * *").exit_code == EXIT_OK
    shown = json.loads(_run(api_server, "show", policy_id).output)
    assert shown["name"] == "nightly-2" and shown["schedule"] == {"every": None, "cron": "0 3 * * *"}
    assert shown["retention"]["keep_last"] == 2  # no retention option: the rule is kept
    assert _run(api_server, "update", policy_id, "--keep-for", "86400", "--lineage-tag", "family").exit_code == EXIT_OK
    rule = json.loads(_run(api_server, "show", policy_id).output)["retention"]
    assert rule == {"keep_last": None, "keep_for": 86400, "action": "report", "delete_shared": False,
                    "lineage_tag": "family"}  # fmt: skip
    assert _run(api_server, "update", policy_id, "--keep-last", "0").exit_code == EXIT_USAGE  # the API's 422

    assert "paused policy" in _run(api_server, "pause", policy_id).output
    assert json.loads(_run(api_server, "show", policy_id).output)["paused"] is True
    assert _run(api_server, "run", policy_id).exit_code == EXIT_USAGE  # paused: refused (409)
    assert _run(api_server, "resume", policy_id).exit_code == EXIT_OK
    ran = _run(api_server, "run", policy_id)
    assert ran.exit_code == EXIT_OK and "run 1" in ran.output

    data = api_server.data()
    policy = data.policies.load(policy_id)
    data.policies.claim(policy, time.time(), time.time() + 60, skipped="the previous run's batch x had not finished")
    verdict = {"image_id": "c" * 32, "source": "s" * 32, "lineage": "web", "verdict": "kept_shared"}
    data.policies.record_retirements(policy_id, 1, [verdict])
    status = _run(api_server, "status", policy_id)
    assert status.exit_code == EXIT_OK and "nightly-2" in status.output and "skipped" in status.output
    assert "Retention of run 1" in status.output and "kept_shared" in status.output

    assert _run(api_server, "delete", policy_id).exit_code == EXIT_OK
    gone = _run(api_server, "show", policy_id)
    assert gone.exit_code == EXIT_USAGE and "not found" in gone.stderr


def test_a_bad_definition_names_the_field_and_rule(api_server) -> None:
    result = _run(api_server, "create", "bad", "--cron", "99 * * * *")
    assert result.exit_code == EXIT_USAGE
    assert "schedule.cron: is not a cron expression Celery accepts" in result.stderr
    unknown = _run(api_server, "create", "bad", "--every", "3600", "--filter", "colour=red")
    assert unknown.exit_code == EXIT_USAGE and "unknown filter 'colour'" in unknown.output + unknown.stderr
