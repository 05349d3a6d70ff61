"""The commands' exit codes and messages: 0 all succeeded, 1 some did not, 2 usage or input errors, 3 no API."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli import progress
from cli.main import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, app
from cli.processes import free_port

IMG = "0b6c3e52-6b0a-4bd4-8a70-4c0ec2f6a9b1"
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")  # tests/cli/conftest.py


def _manifest(tmp_path: Path, text: str, name: str = "m.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _api(server) -> list[str]:
    return ["--api", server.url, "--token", server.token]


def test_no_api_configured_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "a" * 32])
    assert result.exit_code == EXIT_USAGE
    assert "no API address" in result.stderr and "Traceback" not in result.output


def test_unreachable_api(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, f"image_id\n{IMG}\n")
    result = runner.invoke(app, ["submit", manifest, "--api", f"http://127.0.0.1:{free_port()}", "--token", "t"])
    assert result.exit_code == EXIT_UNREACHABLE
    assert "API unreachable" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [("image_id\nnot-a-uuid\n", "no valid rows"), ("image,name\nx,y\n", "unknown column(s) image")],
)
def test_manifest_without_good_rows_is_an_input_error(tmp_path: Path, text: str, message: str) -> None:
    result = runner.invoke(app, ["submit", _manifest(tmp_path, text), "--api", "http://x", "--token", "t"])
    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr


def test_missing_manifest_is_an_input_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["submit", str(tmp_path / "nope.csv"), "--api", "http://x", "--token", "t"])
    assert result.exit_code == EXIT_USAGE and "cannot read" in result.stderr


def test_wrong_token_is_one_line_saying_where_it_came_from_and_how_to_give_another(tmp_path, api_server) -> None:
    result = runner.invoke(app, ["status", "a" * 32, "--api", api_server.url, "--token", "wrong"])
    assert result.exit_code == EXIT_USAGE
    expected = (
        f"error: API refused GET /v1/batches/{'a' * 32} (401): missing or invalid bearer token; the token sent came "
        "from --token or IMSREP_API_TOKEN: give the API's token there, or unset both to use the one imsrep up wrote "
        f"to {tmp_path}/state/stack.json"
    )
    assert result.stderr.strip() == expected


def test_a_stale_stack_file_token_is_named_as_the_one_sent(tmp_path: Path, api_server) -> None:
    # ``imsrep up`` of another stack left its token behind: the CLI read it, and says so.
    stack = {"api_url": api_server.url, "api_token": "an-old-stack-token", "flower_url": "", "flower_user": "",
             "flower_password": "", "redis_url": "", "state_dir": "state", "log_dir": ""}  # fmt: skip
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "stack.json").write_text(json.dumps(stack))
    result = runner.invoke(app, ["batches"])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.strip() == (
        "error: API refused GET /v1/batches (401): missing or invalid bearer token; the token sent is the one imsrep "
        f"up wrote to {tmp_path}/state/stack.json: give the API's with --token or IMSREP_API_TOKEN"
    )
    assert "an-old-stack-token" not in result.output


def test_unknown_batch(api_server) -> None:
    result = runner.invoke(app, ["status", "a" * 32, *_api(api_server)])
    assert result.exit_code == EXIT_USAGE and "(404)" in result.stderr


def test_submit_reports_bad_rows_by_line_and_submits_the_rest(tmp_path: Path, api_server) -> None:
    manifest = _manifest(tmp_path, f"image_id,name\n{IMG},good\nnot-a-uuid,x\n{IMG},bad<name>\n{IMG},\n")
    results = tmp_path / "results.json"
    result = runner.invoke(app, ["submit", manifest, "--results", str(results), *_api(api_server)])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    assert f"{manifest}:3: image_id: must be an image ID in UUID form" in result.stderr
    assert f"{manifest}:4: name:" in result.stderr
    assert "Submitted 2 items" in result.stdout
    rows = json.loads(results.read_text())
    assert [(r["line"], r["state"]) for r in rows] == [(2, "accepted"), (3, "invalid"), (4, "invalid"), (5, "accepted")]


def test_status_cancel_retry(tmp_path: Path, api_server) -> None:
    manifest = _manifest(tmp_path, f'[{{"image_id": "{IMG}"}}, {{"image_id": "{IMG}", "kms_key": "app-key"}}]',
                         "m.json")  # fmt: skip
    submitted = runner.invoke(app, ["submit", manifest, *_api(api_server)])
    assert submitted.exit_code == EXIT_OK, submitted.output
    batch_id = re.search(r"in batch ([0-9a-f]{32})", submitted.stdout).group(1)

    status = runner.invoke(app, ["status", batch_id, "--json", *_api(api_server)])
    assert status.exit_code == EXIT_SOME_FAILED  # not done: no worker runs here
    shown = json.loads(status.stdout)
    assert shown["batch"]["total"] == 2 and {i["state"] for i in shown["items"]} == {"accepted"}

    cancelled = runner.invoke(app, ["cancel", batch_id, *_api(api_server)])
    assert cancelled.exit_code == EXIT_OK and "2 cancelled" in cancelled.stdout

    table = runner.invoke(app, ["status", batch_id, *_api(api_server)])
    assert table.exit_code == EXIT_SOME_FAILED and "cancelled" in table.stdout

    retried = runner.invoke(app, ["retry", batch_id, *_api(api_server)])
    assert retried.exit_code == EXIT_OK and f"retried 0 failed items of batch {batch_id}" in retried.stdout
    assert f"2 cancelled items stay cancelled: imsrep retry --cancelled {batch_id} resumes them" in retried.stdout

    resumed = runner.invoke(app, ["retry", batch_id, "--cancelled", *_api(api_server)])
    assert resumed.exit_code == EXIT_OK
    assert f"retried 0 failed items and resumed 2 cancelled items of batch {batch_id}" in resumed.stdout
    shown = json.loads(runner.invoke(app, ["status", batch_id, "--json", *_api(api_server)]).stdout)
    assert {(i["state"], i["attempt"]) for i in shown["items"]} == {("accepted", 2)}


def test_submitting_a_manifest_again_submits_nothing_twice(tmp_path: Path, api_server) -> None:
    rows = "".join(f"{IMG},again-{i}\n" for i in range(5))
    manifest = _manifest(tmp_path, f"image_id,name\n{rows}", "again.csv")
    first = runner.invoke(app, ["submit", manifest, "--chunk-size", "2", *_api(api_server)])
    assert first.exit_code == EXIT_OK, first.output
    assert "Chunk 3/3 (lines 6-6): batch" in first.stdout
    second = runner.invoke(app, ["submit", manifest, "--chunk-size", "2", *_api(api_server)])
    assert second.exit_code == EXIT_OK, second.output
    assert second.stdout.count("(an earlier run's; not submitted again)") == 3
    assert "5 of them already accepted by an earlier run" in second.stdout
    batches = [line.split("batch ")[1].split()[0] for line in first.stdout.splitlines() if line.startswith("Chunk")]
    assert [line.split("batch ")[1].split()[0] for line in second.stdout.splitlines() if line.startswith("Chunk")] \
        == batches  # fmt: skip
    fresh = runner.invoke(app, ["submit", manifest, "--chunk-size", "2", "--resubmit", *_api(api_server)])
    assert fresh.exit_code == EXIT_OK and "earlier run" not in fresh.stdout


def test_batches_lists_newest_first_by_label_and_delete_refuses_a_running_batch(tmp_path: Path, api_server) -> None:
    label = f"cli-{uuid.uuid4().hex[:8]}"
    manifest = _manifest(tmp_path, f"image_id\n{IMG}\n", "one.csv")
    made = []
    for _ in range(2):
        submitted = runner.invoke(app, ["submit", manifest, "--label", label, "--resubmit", *_api(api_server)])
        made.append(submitted.stdout.split("batch ")[1].split()[0])
    listed = runner.invoke(app, ["batches", "--label", label, "--json", *_api(api_server)])
    assert listed.exit_code == EXIT_OK, listed.output
    shown = json.loads(listed.stdout)
    assert [(b["batch_id"], b["label"], b["state"]) for b in shown] == [
        (made[1], label, "running"),
        (made[0], label, "running"),
    ]
    newest = runner.invoke(app, ["batches", "--label", label, "--limit", "1", "--json", *_api(api_server)])
    assert [b["batch_id"] for b in json.loads(newest.stdout)] == [made[1]]
    table = runner.invoke(app, ["batches", "--label", label, *_api(api_server)])
    assert table.exit_code == EXIT_OK and "running" in table.stdout and "Batches, newest first" in table.stdout
    refused = runner.invoke(app, ["delete", made[0], *_api(api_server)])
    assert refused.exit_code == EXIT_USAGE and "(409)" in refused.stderr and "is not finished" in refused.stderr
    assert runner.invoke(app, ["cancel", made[0], *_api(api_server)]).exit_code == EXIT_OK
    deleted = runner.invoke(app, ["delete", made[0], *_api(api_server)])
    assert deleted.exit_code == EXIT_OK and f"deleted batch {made[0]}" in deleted.stdout
    assert runner.invoke(app, ["status", made[0], *_api(api_server)]).exit_code == EXIT_USAGE


def test_the_api_address_and_token_come_from_the_environment(api_server) -> None:
    env = {"IMSREP_API_URL": api_server.url, "IMSREP_API_TOKEN": api_server.token}
    result = runner.invoke(app, ["status", "a" * 32], env=env)
    assert result.exit_code == EXIT_USAGE and "(404)" in result.stderr  # reached the API, which knows no such batch


@pytest.mark.parametrize("command", ["submit", "status", "watch", "cancel", "retry", "up"])
def test_help_shows_each_options_environment_variable(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_OK
    variables = {"IMSREP_STATE_DIR"} | (set() if command == "up" else {"IMSREP_API_URL", "IMSREP_API_TOKEN"})
    for variable in variables:
        assert f"env var: {variable}" in result.stdout, (command, variable)


def test_version() -> None:
    from importlib.metadata import version  # noqa: PLC0415

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == EXIT_OK and result.stdout.strip() == f"imsrep {version('ims-replicator')}"


def test_a_deeply_nested_json_manifest_is_one_line_and_exit_2(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, "[" * 100_000, "deep.json")
    result = runner.invoke(app, ["submit", manifest, "--api", "http://x", "--token", "t"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "nested too deeply" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_identical_rows_are_warned_about_with_their_lines(tmp_path: Path, api_server) -> None:
    manifest = _manifest(tmp_path, f"image_id,name\n{IMG},a\n{IMG},b\n{IMG},a\n")
    result = runner.invoke(app, ["submit", manifest, *_api(api_server)])
    assert result.exit_code == EXIT_OK, result.output
    assert "lines 2, 4 ask for the same copy" in " ".join(result.stderr.split())


def test_each_accepted_chunk_is_printed_as_it_is_accepted(tmp_path: Path, api_server) -> None:
    # The third chunk names an account the server does not know, and nothing else: all of it is refused.
    rows = [f"{IMG},n{i}," for i in range(4)] + [f"{IMG},n9,nowhere"]
    manifest = _manifest(tmp_path, "image_id,name,account\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["submit", manifest, "--chunk-size", "2", *_api(api_server)])
    accepted = [line for line in result.stdout.splitlines() if line.startswith("Chunk ")]
    assert len(accepted) == 2 and "(lines 2-3): batch" in accepted[0] and "(lines 4-5): batch" in accepted[1]
    assert f"{manifest}:6: refused by the API: account:" in " ".join(result.stderr.split())


def test_select_submits_a_selector_once_a_day_and_refuses_an_impossible_template(api_server) -> None:
    label = f"sel-{uuid.uuid4().hex[:8]}"
    argv = ["select", "--encrypted-with", "old-key", "--kms-key", "new-key", "--label", label, *_api(api_server)]
    first = runner.invoke(app, argv)
    assert first.exit_code == EXIT_OK, first.output
    batch_id = first.stdout.split("Batch ")[1].split(":")[0]
    assert "selecting images" in first.stdout
    again = runner.invoke(app, argv)
    assert again.exit_code == EXIT_OK and f"Batch {batch_id}: this selection was already accepted" in again.stdout
    shown = json.loads(runner.invoke(app, ["batches", "--label", label, "--json", *_api(api_server)]).stdout)
    assert [(b["batch_id"], b["selection"]["state"]) for b in shown] == [(batch_id, "expanding")]

    bad = runner.invoke(app, ["select", "--no-fast-create", "--name", "{name}<old>", *_api(api_server)])
    assert bad.exit_code == EXIT_USAGE and "(422)" in bad.stderr and "template.name" in bad.stderr


def test_a_manifest_whose_every_row_the_api_refuses_submits_nothing_and_exits_2(tmp_path: Path, api_server) -> None:
    manifest = _manifest(tmp_path, f"image_id,account\n{IMG},nowhere\n")
    result = runner.invoke(app, ["submit", manifest, *_api(api_server)])
    assert result.exit_code == EXIT_USAGE, result.output
    stderr = " ".join(result.stderr.split())
    assert f"{manifest}:2: refused by the API: account:" in stderr
    assert f"error: no valid rows in {manifest}: the API refused every row (listed above); nothing was submitted" \
        in stderr  # fmt: skip
    assert "Submitted" not in result.stdout and "batch" not in result.stdout


@pytest.mark.parametrize("check", [[], ["--check"]])
def test_an_unknown_account_is_an_error_naming_the_configured_ones(api_server, check: list[str]) -> None:
    result = runner.invoke(app, ["accounts", "--account", "nosuch", *check, *_api(api_server)])
    assert result.exit_code == EXIT_USAGE, result.output
    expected = "error: --account nosuch: no such account is configured; the configured ones: default"
    assert result.stderr.strip() == expected and result.stdout == ""


def _commands() -> list[list[str]]:
    return [[], *([name] for name in sorted(typer.main.get_command(app).commands))]


@pytest.mark.parametrize("command", _commands(), ids=lambda command: " ".join(["imsrep", *command]))
def test_help_shows_each_flag_as_a_flag_without_a_value(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_OK and "--help" in result.stdout
    valued = [line.strip() for line in result.stdout.splitlines() if re.search(r"<bool>|\bBOOLEAN\b", line)]
    assert valued == []


def test_help_says_what_imsrep_does() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    said = " ".join(result.stdout.split())
    assert "in a region or across regions: copy, encrypt, decrypt or re-key, enable Fast Create, tag and share" in said


@pytest.mark.parametrize("command", [["watch"], ["submit", "--wait"]], ids=" ".join)
def test_ctrl_c_while_watching_says_the_batch_goes_on_and_how_to_watch_it_again(
    tmp_path: Path, api_server, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    manifest = _manifest(tmp_path, f"image_id,name\n{IMG},watched\n")
    submitted = runner.invoke(app, ["submit", manifest, *_api(api_server)])
    batch_id = re.search(r"in batch ([0-9a-f]{32})", submitted.stdout).group(1)

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt  # where a Ctrl-C lands: between two looks at the batch (no worker ends it here)

    monkeypatch.setattr(progress.time, "sleep", ctrl_c)
    argv = [command[0], batch_id if command == ["watch"] else manifest, *command[1:], *_api(api_server)]
    result = runner.invoke(app, argv)  # submit: the same manifest again, answered with the same batch
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert result.stderr.strip().endswith(
        f"Stopped watching; the batch goes on in the background. To watch again: imsrep watch {batch_id}"
    )
