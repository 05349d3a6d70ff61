"""``imsrep policy …``: standing policies from the command line (the API's ``/v1/policies``).

A policy is a campaign's filters and template (the same options as ``imsrep select``/``imsrep plan --filter``) with
a schedule. ``status`` shows where every policy is (or one policy and its latest runs), ``plan`` what the next
run would copy.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from cli import campaign, planning
from cli.main import EXIT_OK, EXIT_SOME_FAILED, ApiUrl, StateDir, Token, _client, _errors, console
from cli.progress import short_time

policy_app = typer.Typer(help="Standing policies: a selector and template run on a schedule, each source copied once.")

Every = Annotated[int | None, typer.Option("--every", help="Run every so many seconds")]
Cron = Annotated[str | None, typer.Option("--cron", help="Run by a 5-field cron expression (UTC), e.g. '0 3 * * *'")]
OverlapOption = Annotated[
    str | None, typer.Option("--overlap", help="While the previous run is still going: skip (default) or wait")
]
Filters = Annotated[
    list[str] | None,
    typer.Option("--filter", help="A selector filter, key=value (repeatable; the API's names, account=… included)"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON")]
KeepLast = Annotated[int | None, typer.Option("--keep-last", help="Retention: copies kept per lineage, newest first")]
KeepFor = Annotated[
    int | None, typer.Option("--keep-for", help="Retention: seconds; copies of sources younger than this are kept")
]
Retire = Annotated[
    str | None, typer.Option("--retire", help="Retention: report (default) or delete the copies not kept")
]
DeleteShared = Annotated[
    bool, typer.Option("--delete-shared", help="Retention: delete a copy even while a member has accepted it")
]
LineageTag = Annotated[
    str | None, typer.Option("--lineage-tag", help="Retention: the sources' tag naming their lineage")
]


def _retention(
    keep_last: int | None, keep_for: int | None, action: str | None, delete_shared: bool, lineage_tag: str | None
) -> dict[str, Any]:
    """The retention rule the options give, as ``{"retention": ...}`` (none given: nothing, so an update keeps
    the policy's rule); the API checks it."""
    rule = campaign.compact(
        {"keep_last": keep_last, "keep_for": keep_for, "action": action, "lineage_tag": lineage_tag}
    )
    if delete_shared:
        rule["delete_shared"] = True
    return {"retention": rule} if rule else {}


def _definition(
    filters: list[str] | None, every: int | None, cron: str | None, overlap: str | None, template: dict[str, Any]
) -> dict[str, Any]:
    """The fields the options give (an update sends only those)."""
    body: dict[str, Any] = {}
    if filters:
        body["selector"] = campaign.selector_from_filters(filters)
    if template:
        body["template"] = template
    if every is not None or cron is not None:
        body["schedule"] = campaign.compact({"every": every, "cron": cron})
    if overlap is not None:
        body["overlap"] = overlap
    return body


@policy_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The policy's name (each run's batch label)")],
    filters: Filters = None,
    every: Every = None,
    cron: Cron = None,
    overlap: OverlapOption = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused")] = False,
    keep_last: KeepLast = None,
    keep_for: KeepFor = None,
    retire: Retire = None,
    delete_shared: DeleteShared = False,
    lineage_tag: LineageTag = None,
    name_pattern: campaign.NamePattern = None,
    description: campaign.Description = None,
    kms_key: campaign.KmsKey = None,
    decrypt: campaign.Decrypt = False,
    tag: campaign.Tags = None,
    target_region: campaign.ToRegion = None,
    target_project: campaign.ToProject = None,
    share_with: campaign.ShareWith = None,
    distribute: campaign.Distribute = None,
    withdraw_share: campaign.WithdrawShare = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Create a policy: its filters (--filter), what each copy is (the template options), --every or --cron, and
    a retention rule (--keep-last and/or --keep-for)."""
    template = campaign.template(
        name_pattern, description, kms_key, decrypt, tag, None,
        target_region=target_region, target_project=target_project, share_with=share_with,
        distribute=distribute, withdraw_share=withdraw_share,
    )  # fmt: skip
    body = {"name": name, "selector": {}, **_definition(filters, every, cron, overlap, template), "paused": paused}
    body |= _retention(keep_last, keep_for, retire, delete_shared, lineage_tag)
    with _errors(), _client(api, token, state_dir) as client:
        policy = client.create_policy(body)
    console.print(f"created policy {policy['policy_id']} ({policy['name']}); next run {_when(policy['next_run_at'])}")


@policy_app.command("list")
def list_command(as_json: AsJson = False, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """The policies you may see: schedule, state, runs and next run."""
    with _errors(), _client(api, token, state_dir) as client:
        found = client.policies()
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table(title="Policies")
    for column in ("Policy", "Name", "Account", "Schedule", "State", "Runs", "Next run"):
        table.add_column(column, overflow="fold")
    for p in found:
        state = "paused" if p["paused"] else "active"
        table.add_row(
            p["policy_id"], p["name"], p["account"], _schedule(p), state, str(p["runs"]), _when(p["next_run_at"])
        )
    console.print(table)


@policy_app.command("show")
def show(policy_id: str, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """One policy as the API stores it (JSON)."""
    with _errors(), _client(api, token, state_dir) as client:
        print(json.dumps(client.policy(policy_id), indent=2))


@policy_app.command("update")
def update(
    policy_id: str,
    rename: Annotated[str | None, typer.Option("--rename", help="A new name")] = None,
    filters: Filters = None,
    every: Every = None,
    cron: Cron = None,
    overlap: OverlapOption = None,
    keep_last: KeepLast = None,
    keep_for: KeepFor = None,
    retire: Retire = None,
    delete_shared: DeleteShared = False,
    lineage_tag: LineageTag = None,
    name_pattern: campaign.NamePattern = None,
    description: campaign.Description = None,
    kms_key: campaign.KmsKey = None,
    decrypt: campaign.Decrypt = False,
    tag: campaign.Tags = None,
    target_region: campaign.ToRegion = None,
    target_project: campaign.ToProject = None,
    share_with: campaign.ShareWith = None,
    distribute: campaign.Distribute = None,
    withdraw_share: campaign.WithdrawShare = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Change a policy: --filter replaces its whole selector, any template option its whole template, any
    retention option its whole retention rule."""
    template = campaign.template(
        name_pattern, description, kms_key, decrypt, tag, None,
        target_region=target_region, target_project=target_project, share_with=share_with,
        distribute=distribute, withdraw_share=withdraw_share,
    )  # fmt: skip
    body = _definition(filters, every, cron, overlap, template) | ({"name": rename} if rename else {})
    body |= _retention(keep_last, keep_for, retire, delete_shared, lineage_tag)
    with _errors(), _client(api, token, state_dir) as client:
        policy = client.update_policy(policy_id, body)
    console.print(f"updated policy {policy_id}; next run {_when(policy['next_run_at'])}")


def _action(policy_id: str, action: str, done: str, target: tuple) -> dict[str, Any]:
    with _errors(), _client(*target) as client:
        answer = client.policy_action(policy_id, action)
    console.print(f"{done} policy {policy_id}")
    return answer


@policy_app.command("pause")
def pause(policy_id: str, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """Pause a policy: no run starts (a run under way goes on)."""
    _action(policy_id, "pause", "paused", (api, token, state_dir))


@policy_app.command("resume")
def resume(policy_id: str, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """Resume a paused policy: its next run by the schedule from now."""
    _action(policy_id, "resume", "resumed", (api, token, state_dir))


@policy_app.command("run")
def run(policy_id: str, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """Run a policy now (unless its previous run is still going: then as its overlap rule says)."""
    answer = _action(policy_id, "run", "asked for run", (api, token, state_dir))
    console.print(f"run {answer['run']}: imsrep policy status {policy_id}", highlight=False)


@policy_app.command("delete")
def delete(policy_id: str, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """Delete a policy and its runs' history (its batches and copies stay)."""
    with _errors(), _client(api, token, state_dir) as client:
        client.delete_policy(policy_id)
    console.print(f"deleted policy {policy_id}")


@policy_app.command("plan")
def plan(
    policy_id: str,
    show_all: Annotated[bool, typer.Option("--all", help="List every item, not only those refused")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the workers")] = 600.0,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """What the next run would copy (the sources already copied left out), with a batch plan's verdicts, and what
    its retention would retire. Exit 0 when everything would copy, 1 otherwise."""
    outcome = planning.PlanOutcome()
    with _errors(), _client(api, token, state_dir) as client, console.status("Planning...") as status:
        accepted = client.policy_action(policy_id, "plan")
        found, verdicts = planning.wait_plan(
            client, accepted["plan_id"], timeout, lambda p: status.update(f"Planning... {p.get('listed', 0)} listed")
        )
        planning.add(outcome, found, verdicts)
    shown = outcome.verdicts if show_all else outcome.refused
    if shown:
        console.print(planning.verdicts_table(shown, "Every item" if show_all else "Items that would not be copied"))
    console.print(planning.summary_table(outcome))
    if note := planning.distribution_note(outcome):
        console.print(note, soft_wrap=True, highlight=False)
    retirements = (found.get("summary") or {}).get("retirements")
    if retirements:
        console.print(_retirements_table(retirements, "What its retention would do"))
    raise typer.Exit(EXIT_OK if outcome.all_copy else EXIT_SOME_FAILED)


@policy_app.command("status")
def status(
    policy_id: Annotated[
        str | None, typer.Argument(help="One policy, with its latest runs (default: every policy, a line each)")
    ] = None,
    as_json: AsJson = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Where policies are: each one's last run and outcome, next run, lag and copies made and retired; or one
    policy and its latest runs (each run's batch, state, items by state, the sources left out as copied, the copies
    retired and its lag), then the latest retention's verdicts."""
    with _errors(), _client(api, token, state_dir) as client:
        if policy_id is None:
            found = client.policies()
        else:
            policy, runs = client.policy(policy_id), client.policy_runs(policy_id)
    if policy_id is None:
        if as_json:
            print(json.dumps(found, indent=2))
        else:
            console.print(_overview(found))
        return
    if as_json:
        print(json.dumps({"policy": policy, "runs": runs}, indent=2))
        return
    state = "paused" if policy["paused"] else f"active, next run {_when(policy['next_run_at'])}"
    console.print(f"Policy {policy_id} ({policy['name']}): {_schedule(policy)}, {state}", highlight=False)
    console.print(
        f"Last run: {policy['last_run_outcome'] or '-'}; lag {_lag(policy['lag_seconds'])}; "
        f"copies made {_copies(policy)}, retired {policy['copies_retired']}",
        highlight=False,
    )
    table = Table(title="Runs, newest first")
    for column in ("Run", "Started", "State", "Batch", "Listed", "Already copied", "Items", "By state", "Lag"):
        table.add_column(column, overflow="fold")
    for r in runs:
        more = {"receivers' copies": r["receiver_copies"], "copies retired": r["retired"]}
        counts = ", ".join(f"{state} {n}" for state, n in [*sorted(r["counts"].items()), *more.items()] if n)
        table.add_row(
            str(r["run"]), short_time(r["started_at"]), r["state"], r["batch_id"] or r["message"] or "",
            str(r["listed"]), str(r["already_copied"]), str(r["total"]), counts, _lag(r["lag_seconds"]),
        )  # fmt: skip
    console.print(table)
    latest = next((r for r in runs if r["retirements"]), None)
    if latest is not None:
        console.print(_retirements_table(latest["retirements"], f"Retention of run {latest['run']}"))


def _retirements_table(retirements: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("Copy", "Source", "Lineage", "Verdict", "Why"):
        table.add_column(column, overflow="fold")
    for j in retirements:
        why = " ".join(part for part in (j.get("reason"), j.get("message")) if part)
        table.add_row(j["image_id"], j["source"], j["lineage"], j["verdict"], why)
    return table


def _overview(policies: list[dict[str, Any]]) -> Table:
    table = Table(title="Policies")
    for column in ("Policy", "Name", "Schedule", "Last run", "Outcome", "Next run", "Lag", "Copies made", "Retired"):
        table.add_column(column, overflow="fold")
    for p in policies:
        last = p["last_run"]
        ran = "-" if last is None else f"{last['run']}, {_when(last['started_at'])}"
        table.add_row(
            p["policy_id"], p["name"], _schedule(p), ran, p["last_run_outcome"] or "-",
            "paused" if p["paused"] else _when(p["next_run_at"]), _lag(p["lag_seconds"]),
            _copies(p), str(p["copies_retired"]),
        )  # fmt: skip
    return table


def _copies(policy: dict[str, Any]) -> str:
    """The copies its runs made, and those its receivers made when it distributes."""
    received = policy.get("receiver_copies") or 0
    return f"{policy['copies_made']} (+{received} receivers')" if received else str(policy["copies_made"])


def _lag(seconds: float | None) -> str:
    return "-" if seconds is None else planning.duration(seconds)


def _schedule(policy: dict[str, Any]) -> str:
    schedule = policy["schedule"]
    return f"every {schedule['every']} s" if schedule.get("every") else f"cron {schedule['cron']}"


def _when(iso: str | None) -> str:
    return "-" if iso is None else f"{short_time(iso)} UTC"
