"""A reason for every wait on the command line: ``status``, ``accounts`` and ``watch`` of a line the image quota
holds, against a real API over real Redis; and the watch line's pieces on their own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import redis
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from cli import progress
from cli.main import EXIT_INTERRUPTED, EXIT_SOME_FAILED, app
from cli.progress import EtaColumn, describe_counts, describe_waits
from tests.support import queue_items
from worker.domain.pools import Pool

IMAGES = ["0b6c3e52-6b0a-4bd4-8a70-4c0ec2f6a9b1", "5d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"]
WIDE = {"COLUMNS": "250"}  # a table row or the status line on one line
QUOTA_HINT = "Waiting on quota: the project's private-image quota is full"
runner = CliRunner()


@pytest.fixture
def quota_blocked(api_server) -> Iterator[str]:
    """A batch of two items in line for the ``default`` account's slots, whose project has no image quota left; the
    account as it was afterwards (the API is the session's)."""
    headers = {"Authorization": f"Bearer {api_server.token}"}
    with httpx.Client(base_url=api_server.url, headers=headers) as api:
        batch = api.post("/v1/batches", json={"items": [{"image_id": i} for i in IMAGES]}).json()
        local = next(a for a in api.get("/v1/accounts").json()["accounts"] if a["mode"] == "in-region")
        pool = Pool("default", "default", local["slots"]["limit"], local["project_id"])
        data = api_server.data()
        queue_items(data, batch["item_ids"], pool)
        data.slots.set_quota(pool.project, 50, 50, 0, 0.0)
        try:
            yield batch["batch_id"]
        finally:
            for item in data.records.get_items(batch["item_ids"]):
                data.slots.release(pool.name, item)
            redis.Redis.from_url(api_server.redis_url).delete(data.keys.quota(pool.project))
            api.post(f"/v1/batches/{batch['batch_id']}/cancel")


def _api(server) -> list[str]:
    return ["--api", server.url, "--token", server.token]


def test_status_gives_a_waiting_items_reason_and_what_to_do_once(api_server, quota_blocked: str) -> None:
    shown = runner.invoke(app, ["status", quota_blocked, *_api(api_server)], env=WIDE)
    assert shown.exit_code == EXIT_SOME_FAILED, shown.output
    rows = [line for line in shown.stdout.splitlines() if any(image in line for image in IMAGES)]
    assert len(rows) == 2 and all(line.split("│")[4].strip() == "quota" for line in rows), shown.stdout  # Reason
    assert "│ waiting │ quota  │     2 │" in shown.stdout  # and the summary by state and reason
    assert shown.stdout.count(QUOTA_HINT) == 1
    assert "raise its IMS image quota (the simulator: --image-quota N at start" in shown.stdout


def test_accounts_says_a_blocked_line_drains_when_unblocked_not_in_a_time(api_server, quota_blocked: str) -> None:
    shown = runner.invoke(app, ["accounts", *_api(api_server)], env=WIDE)
    assert shown.exit_code == 0, shown.output
    local = next(line for line in shown.stdout.splitlines() if "in-region" in line)
    cells = [cell.strip() for cell in local.split("│")[1:-1]]
    assert cells[-2:] == ["2 (quota)", "blocked (quota)"]  # Waiting, Drains
    assert shown.stdout.count(QUOTA_HINT) == 1


def test_watch_says_what_the_line_waits_for_instead_of_an_eta(
    api_server, quota_blocked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt  # after the first look: the line as it was then stays on the screen

    monkeypatch.setattr(progress.time, "sleep", ctrl_c)
    shown = runner.invoke(app, ["watch", quota_blocked, *_api(api_server)], env=WIDE)
    assert shown.exit_code == EXIT_INTERRUPTED, shown.output
    assert "ETA blocked waiting 2 (quota: delete images or raise the image quota)" in " ".join(shown.stdout.split())
    assert "-:--:--" not in shown.stdout
    assert shown.stdout.count(QUOTA_HINT) == 1


def _line(blocked_by: str, items: int, next_step: str) -> dict:
    return {"account": "a", "mode": "in-region", "items": items, "blocked_by": blocked_by, "next_step": next_step}


def test_the_watch_line_counts_each_reason_when_there_are_several() -> None:
    assert describe_waits([]) == ""
    assert describe_waits([_line("slots", 3, "as a copy ends")]) == "(slots: as a copy ends)"
    lines = [_line("quota", 2, "raise it"), _line("slots", 3, "as a copy ends"), _line("quota", 1, "raise it")]
    assert describe_waits(lines) == "(3 quota: raise it; 3 slots: as a copy ends)"
    said = describe_counts(Counter({"succeeded": 4, "waiting": 6}), describe_waits(lines))
    assert said == "waiting 6 (3 quota: raise it; 3 slots: as a copy ends)  [green]succeeded 4[/]"


def test_the_eta_column_says_blocked_while_nothing_moves_the_line() -> None:
    bar = Progress(EtaColumn(), console=Console(record=True, width=40), get_time=lambda: 0.0)
    task = bar.add_task("", total=10)
    eta = bar.columns[0]
    assert eta(bar.tasks[task]).plain == "ETA -:--:--"  # no rate yet: rich's own
    bar.update(task, blocked=True)
    assert eta(bar.tasks[task]).plain == "ETA blocked"  # at once, though rich keeps an estimate for a while
    bar.update(task, blocked=False)
    assert eta(bar.tasks[task]).plain == "ETA -:--:--"
