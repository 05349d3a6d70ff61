"""The ``imsrep`` command: the local stack, the simulator, the demo and the API client.

Exit codes: 0 everything succeeded, 1 some items did not (or a service died), 2 usage or input errors (a bad
manifest, a refused request), 3 the API is unreachable, 130 watching was stopped with Ctrl-C (the batches go on).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.status import Status

from cli import campaign, planning
from cli.api_client import (
    TOKEN_ENV,
    URL_ENV,
    ApiCallError,
    ApiClient,
    ApiTarget,
    ApiUnreachable,
    NoApiConfigured,
    UnknownAccount,
    resolve_target,
    state_dir_default,
)
from cli.audit_view import audit_table
from cli.demo import run_demo
from cli.helpflags import show_flags_bare
from cli.item_view import item_view
from cli.manifest import ManifestError, read_manifest
from cli.processes import ServiceError, wait_until
from cli.progress import accounts_table, batches_table, distributions_table, hints, items_table, summary_table, watch
from cli.results import ItemResult, write_results
from cli.services import DEFAULT_PORTS, EXAMPLE_PROJECTS, EXAMPLE_REGIONS, SIMULATOR_SHARE_PROJECT
from cli.stack import LocalStack, SentinelSpec, StackInfo, StackOptions, sigterm_as_interrupt
from cli.submission import DEFAULT_CHUNK, Chunk, collect_results, submit_rows
from config.settings import ENV_PREFIX, SettingsError
from config.version import VERSION
from simulator.cli import simulator_command
from worker.domain.priority import Priority
from worker.domain.states import TERMINAL

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
ENDED = {s.value for s in TERMINAL}
# How long ``watch`` and ``submit --wait`` ride out an API that does not answer (restarting, overloaded).
WAIT_PATIENCE = 600.0

show_flags_bare()  # typer's rich help shows `--wait <bool>`, as if a flag took a value
app = typer.Typer(
    name="imsrep",
    help="Bulk replication of Huawei Cloud IMS images, in a region or across regions: copy, encrypt, decrypt or "
    "re-key, enable Fast Create, tag and share.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("simulator", help="Run the IMS + KMS + IAM simulator (a local stand-in for Huawei Cloud).")(
    simulator_command
)

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width


def _version(show: bool) -> None:
    if show:
        console.print(f"imsrep {VERSION}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit")
    ] = False,
) -> None:
    """The options of imsrep itself (its description is the app's ``help``)."""


# typer shows each option's environment variable in --help (``envvar=``, ``show_envvar``).
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar=f"{ENV_PREFIX}STATE_DIR", help="Where data, logs and stack.json live"),
]
ApiUrl = Annotated[
    str | None,
    typer.Option("--api", envvar=URL_ENV, help="API address; default: the running local stack's (stack.json)"),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar=TOKEN_ENV, help="API bearer token; default: the local stack's (stack.json)"),
]


PriorityOption = Annotated[
    Priority,
    typer.Option(help="The batch's share of the slots while other batches wait: high 4, normal 2, low 1"),
]


def _batch_fields(label: str | None, priority: Priority) -> dict[str, str]:
    """The batch's own fields of a request body (what a default leaves out)."""
    fields = {"label": label} if label else {}
    return {**fields, **({"priority": priority.value} if priority is not Priority.NORMAL else {})}


def _port(name: str) -> object:
    return typer.Option(DEFAULT_PORTS[name], f"--{name}-port", help=f"Port of the {name}")


@contextmanager
def _errors() -> Iterator[None]:
    """Every expected failure as one line on stderr and its exit code, never a traceback."""
    try:
        yield
    except ApiUnreachable as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    except ApiCallError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE if exc.status and exc.status < 500 else EXIT_SOME_FAILED) from None
    except (ManifestError, NoApiConfigured, SettingsError, UnknownAccount) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    except (ServiceError, TimeoutError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_SOME_FAILED) from None


@contextmanager
def _watching(batch_ids: Sequence[str]) -> Iterator[None]:
    """Ctrl-C stops the watching, not the batches: say so, and how to watch them again."""
    try:
        yield
    except KeyboardInterrupt:
        what = "the batch goes" if len(batch_ids) == 1 else "the batches go"
        again = "; ".join(f"imsrep watch {batch_id}" for batch_id in batch_ids)
        err.print(f"Stopped watching; {what} on in the background. To watch again: {again}", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _client(
    api: str | None, token: str | None, state_dir: Path | None, *, patient: bool = False, admin: bool = False
) -> ApiClient:
    """A client of the API; a ``patient`` one rides out an API that is briefly away (retrying its reads); an
    ``admin`` one takes the local stack's admin token when none is given."""
    if not patient:
        return ApiClient(resolve_target(api, token, state_dir, admin=admin))

    def retrying(exc: ApiCallError, delay: float) -> None:
        err.print(f"[yellow]warning:[/] {exc}; retrying in {delay:.1f}s", highlight=False)

    return ApiClient(resolve_target(api, token, state_dir), patience=WAIT_PATIENCE, on_retry=retrying)


@app.command()
def up(
    state_dir: StateDir = None,
    api_port: int = _port("api"),
    flower_port: int = _port("flower"),
    redis_port: int = _port("redis"),
    simulator_port: int = _port("simulator"),
    sentinel: Annotated[
        bool,
        typer.Option(
            "--sentinel",
            help="Run Redis as a master, a replica and three Sentinels (free ports; --redis-port is the master's), "
            "to try failover on one machine; a real deployment puts them on separate hosts (docs/scaling.md)",
        ),
    ] = False,
) -> None:
    """Run Redis, the simulator (when no account is configured), the API, a worker, beat and Flower until Ctrl-C."""
    ports = {"api": api_port, "flower": flower_port, "redis": redis_port, "simulator": simulator_port}
    with _errors(), sigterm_as_interrupt():
        options = StackOptions(
            state_dir=state_dir or state_dir_default(),
            ports=ports,
            sentinel=SentinelSpec() if sentinel else None,
            # What examples/ and the README use: a second region (with the agency) and a project to share with.
            simulator_project_ids=EXAMPLE_PROJECTS,
            simulator_regions=EXAMPLE_REGIONS,
        )
        stack = LocalStack(options)
        if not stack.simulator_mode:
            stack.settings.require_credentials()  # the worker would refuse to start: say so before starting anything
        try:
            with console.status("Starting the services..."):
                info = stack.start()
            for line in _addresses(info, stack.simulator_mode):
                console.print(line, soft_wrap=True, highlight=False)
            if not stack.simulator_mode:
                _report_credentials(info)
            console.print(f"Written to {info.state_dir}/stack.json (mode 0600); logs in {info.log_dir}. Ctrl-C stops.")
            dead = stack.supervise()
            err.print(f"[red]error:[/] {dead.name} exited; stopping everything. Last lines of {dead.log_path}:")
            err.print(dead.log_tail(), markup=False, highlight=False)
            raise typer.Exit(EXIT_SOME_FAILED)
        except KeyboardInterrupt:
            console.print("Stopping...")
        finally:
            stack.stop()


def _report_credentials(info: StackInfo) -> None:
    """The configured accounts' credentials, checked once at start: a wrong key or project ID shows now, with the
    setting that fixes it, not at the first copy."""
    target = ApiTarget(info.api_url, info.api_token)
    with console.status("Checking the accounts' credentials..."), ApiClient(target) as client:
        checked = _check_accounts(client)
    for account in checked:
        credentials = account["credentials"]
        style = "green" if credentials["state"] == "ok" else "red"
        about = f": {credentials['message']}" if credentials["message"] else ""
        console.print(f"  account {account['name']} ({account['mode']}): [{style}]{credentials['state']}[/]{about}",
                      soft_wrap=True, highlight=False)  # fmt: skip


def _addresses(info: StackInfo, simulator_mode: bool) -> list[str]:
    """One line per service: lines, not a table, so that no narrow terminal cuts a token or a key in two."""
    master = f"  (Sentinel master {info.redis_sentinel_master})" if info.redis_sentinel_master else ""
    own = info.admin_token != info.api_token  # the stack's own principals: the CLI's an operator, and an admin
    lines = [
        "[bold]imsrep is running[/]",
        f"  API        {info.api_url}  token {info.api_token}" + ("  (operator)" if own else ""),
        *([f"             admin token {info.admin_token}  (the audit trail)"] if own else []),
        f"  API docs   {info.api_url}/docs",
        f"  Flower     {info.flower_url}  user {info.flower_user}  password {info.flower_password}",
        f"  Redis      {info.redis_url}{master}",
    ]
    # Redis's passwords are not printed: they are in files only the user can read, for redis-cli and the like.
    if info.redis_password_file:
        lines.append(f"             password in {info.redis_password_file}")
    if info.redis_sentinel_password_file:
        lines.append(f"             the Sentinels' in {info.redis_sentinel_password_file}")
    if simulator_mode:
        lines.append(f"  Simulator  {info.simulator_url} ({info.simulator_region}, project {info.simulator_project_id})"
                     f"  AK {info.simulator_access_key}  SK {info.simulator_secret_key}")  # fmt: skip
        lines += [f"             {url} ({region})" for region, url in info.simulator_regions.items()]
        lines.append(f"             a second project to share with: {SIMULATOR_SHARE_PROJECT}")
    return lines


@app.command()
def submit(
    manifest: Annotated[Path, typer.Argument(help="CSV or JSON manifest of items")],
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until every item is done")] = False,
    results: Annotated[Path | None, typer.Option("--results", help="Write per-item results (.csv or .json)")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Items per batch request")] = DEFAULT_CHUNK,
    label: Annotated[str | None, typer.Option(help="A label for the batches, to find them by (imsrep batches)")] = None,
    priority: PriorityOption = Priority.NORMAL,
    resubmit: Annotated[
        bool,
        typer.Option(
            "--resubmit",
            help="Submit again even the chunks an earlier run of this manifest had submitted (new idempotency keys)",
        ),
    ] = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Submit a manifest; bad rows are reported by line number and the good ones still go through.

    Safe to run again after any failure: each chunk's idempotency key comes from the manifest's content, the chunk
    size and the chunk's position, so a chunk the API already accepted (within a day) is not submitted twice.
    """
    with _errors():
        parsed = read_manifest(manifest)
        for error in parsed.errors:
            err.print(f"[yellow]{manifest}:{error.line}:[/] {error.message}", highlight=False)
        for lines in parsed.duplicates():
            same = ", ".join(str(line) for line in lines)
            err.print(f"[yellow]warning:[/] {manifest}: lines {same} ask for the same copy (no field but the agency "
                      "tells them apart); each is submitted, so the same copy would be made more than once",
                      highlight=False)  # fmt: skip
        if not parsed.rows:
            _nothing_submitted(manifest, "every row has a problem (listed above)")
        key_base = f"imsrep-submit:{parsed.digest[:40]}" + (f":{secrets.token_hex(8)}" if resubmit else "")
        with _client(api, token, state_dir, patient=wait) as client:
            batch = _batch_fields(label, priority)
            submission = submit_rows(
                client, parsed.rows, chunk_size, key_base=key_base, batch=batch, on_chunk=_print_chunk
            )
            for error in submission.errors:
                err.print(f"[yellow]{manifest}:{error.line}:[/] refused by the API: {error.message}", highlight=False)
            for warning in submission.warnings:
                err.print(f"[yellow]warning:[/] {warning}", highlight=False)
            if not submission.batch_ids:
                _nothing_submitted(manifest, "the API refused every row (listed above)")
            bad = len(parsed.errors) + len(submission.errors)
            replayed = submission.replayed
            earlier = f" ({replayed} of them already accepted by an earlier run)" if replayed else ""
            console.print(f"Submitted {submission.submitted} items{earlier} in batch {', '.join(submission.batch_ids)}"
                          + (f"; {bad} bad rows skipped" if bad else ""), soft_wrap=True)  # fmt: skip
            if wait:
                with _watching(submission.batch_ids):
                    watch(client, submission.batch_ids, console)
            if not (wait or results):
                raise typer.Exit(EXIT_SOME_FAILED if bad else EXIT_OK)
            outcome = collect_results(client, submission, parsed.errors)
        if results:
            write_results(results, outcome)
            console.print(f"Results written to {results}")
        console.print(summary_table(outcome))
        raise typer.Exit(EXIT_OK if all(r.complete for r in outcome) else EXIT_SOME_FAILED)


def _nothing_submitted(manifest: Path, why: str) -> NoReturn:
    err.print(f"[red]error:[/] no valid rows in {manifest}: {why}; nothing was submitted", highlight=False)
    raise typer.Exit(EXIT_USAGE)


def _print_chunk(chunk: Chunk) -> None:
    where = f"Chunk {chunk.number}/{chunk.chunks} (lines {chunk.first_line}-{chunk.last_line})"
    if chunk.replayed:
        console.print(f"{where}: batch {chunk.batch_id} (an earlier run's; not submitted again)", soft_wrap=True)
    else:
        console.print(f"{where}: batch {chunk.batch_id} ({chunk.items} items)", soft_wrap=True)


@app.command()
def select(
    source_name: campaign.SourceName = None,
    name_prefix: campaign.NamePrefix = None,
    status: campaign.Status = None,
    image_type: campaign.ImageType = None,
    visibility: campaign.Visibility = None,
    os_type: campaign.OsType = None,
    platform: campaign.Platform = None,
    source_enterprise_project: campaign.SourceProject = None,
    disk_format: campaign.DiskFormat = None,
    has_tag: campaign.HasTag = None,
    created_after: campaign.CreatedAfter = None,
    created_before: campaign.CreatedBefore = None,
    encrypted: campaign.Encrypted = None,
    encrypted_with: campaign.EncryptedWith = None,
    fast_create: campaign.FastCreate = None,
    min_size_gb: campaign.MinSize = None,
    max_size_gb: campaign.MaxSize = None,
    account: campaign.Account = None,
    name: campaign.NamePattern = None,
    description: campaign.Description = None,
    kms_key: campaign.KmsKey = None,
    decrypt: campaign.Decrypt = False,
    tag: campaign.Tags = None,
    enterprise_project_id: campaign.TargetProject = None,
    target_region: campaign.ToRegion = None,
    target_project: campaign.ToProject = None,
    agency: campaign.Agency = None,
    share_with: campaign.ShareWith = None,
    distribute: campaign.Distribute = None,
    withdraw_share: campaign.WithdrawShare = False,
    provenance: campaign.Provenance = None,
    label: Annotated[str | None, typer.Option(help="A label for the batch, to find it by")] = None,
    priority: PriorityOption = Priority.NORMAL,
    plan: Annotated[bool, typer.Option("--plan", help="Show what it would do, copy nothing (see imsrep plan)")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until every item is done")] = False,
    results: Annotated[Path | None, typer.Option("--results", help="Write per-item results (.csv or .json)")] = None,
    resubmit: Annotated[
        bool, typer.Option("--resubmit", help="Submit again even if the same selection was accepted today")
    ] = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Replicate every image a filter selects, in one batch: the worker pages through the account's images and
    makes an item of each one the filters keep (e.g. --encrypted-with old-key --kms-key new-key)."""
    selector = campaign.compact(
        {
            "name": source_name,
            "name_prefix": name_prefix,
            "status": status,
            "image_type": image_type,
            "visibility": visibility,
            "os_type": os_type,
            "platform": platform,
            "enterprise_project_id": source_enterprise_project,
            "disk_format": disk_format,
            "tag": has_tag,
            "created_after": created_after,
            "created_before": created_before,
            "encrypted": encrypted,
            "kms_key": encrypted_with,
            "fast_create": fast_create,
            "min_size_gb": min_size_gb,
            "max_size_gb": max_size_gb,
            "account": account,
        }
    )
    template = campaign.template(
        name, description, kms_key, decrypt, tag, enterprise_project_id,
        target_region=target_region, target_project=target_project, agency=agency, share_with=share_with,
        distribute=distribute, withdraw_share=withdraw_share, provenance=provenance,
    )  # fmt: skip
    body = {"selector": selector, "template": template, **_batch_fields(label, priority)}
    if plan:
        target = (api, token, state_dir)
        raise typer.Exit(_plan_and_show([(body, [])], results, show_all=False, timeout=600, target=target))
    key = campaign.request_key("select", body) + (f":{secrets.token_hex(8)}" if resubmit else "")
    with _errors(), _client(api, token, state_dir) as client:
        accepted = client.post_batch(body, key)
        batch_id = accepted["batch_id"]
        if accepted["replayed"]:
            console.print(f"Batch {batch_id}: this selection was already accepted today; not submitted again "
                          "(--resubmit submits it anew)", soft_wrap=True)  # fmt: skip
        else:
            console.print(f"Batch {batch_id}: selecting images; items are added as the listing is paged "
                          f"(imsrep watch {batch_id})", soft_wrap=True)  # fmt: skip
        if not (wait or results):
            return
        if wait:
            with _watching([batch_id]):
                watch(client, [batch_id], console)
        batch = client.batch(batch_id)
        items = list(client.items(batch_id))
    outcome = [ItemResult.of(item) for item in items]
    if results:
        write_results(results, outcome)
        console.print(f"Results written to {results}")
    console.print(_selection_line(batch), soft_wrap=True)
    console.print(summary_table(outcome))
    raise typer.Exit(_batch_exit(batch, items))


@app.command("plan")
def plan_command(
    manifest: Annotated[Path | None, typer.Argument(help="CSV or JSON manifest of items (or give --filter)")] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="A selector filter, key=value (repeatable; the API's names: encrypted=true, kms_key=old-key, "
            "fast_create=false, name_prefix=web-, min_size_gb=10, ...)",
        ),
    ] = None,
    name: campaign.NamePattern = None,
    description: campaign.Description = None,
    kms_key: campaign.KmsKey = None,
    decrypt: campaign.Decrypt = False,
    tag: campaign.Tags = None,
    enterprise_project_id: campaign.TargetProject = None,
    target_region: campaign.ToRegion = None,
    target_project: campaign.ToProject = None,
    agency: campaign.Agency = None,
    share_with: campaign.ShareWith = None,
    distribute: campaign.Distribute = None,
    withdraw_share: campaign.WithdrawShare = False,
    provenance: campaign.Provenance = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every item, not only those refused")] = False,
    results: Annotated[Path | None, typer.Option("--results", help="Write every verdict (.csv or .json)")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Items per plan request")] = DEFAULT_CHUNK,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the workers")] = 600.0,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Show what a manifest or a filter would do, copying nothing: each item checked against IMS as a run would
    check it, the items refused with their reasons, the account's quota headroom and how many items exceed it, and
    how long it would take. Exit 0 when everything would copy, 1 otherwise."""
    template = campaign.template(
        name, description, kms_key, decrypt, tag, enterprise_project_id,
        target_region=target_region, target_project=target_project, agency=agency, share_with=share_with,
        distribute=distribute, withdraw_share=withdraw_share, provenance=provenance,
    )  # fmt: skip
    with _errors():
        if (manifest is None) == (not filters):
            raise ManifestError("give a MANIFEST or --filter, not both (nor neither)")
        if manifest is None:
            body = {"selector": campaign.selector_from_filters(filters), "template": template}
            requests: list[tuple[dict, list[int]]] = [(body, [])]
            bad = 0
        else:
            if template:
                raise ManifestError("--name, --kms-key and the other template options go with --filter")
            parsed = read_manifest(manifest)
            for error in parsed.errors:
                err.print(f"[yellow]{manifest}:{error.line}:[/] {error.message}", highlight=False)
            if not parsed.rows:
                raise ManifestError(f"no valid rows in {manifest}; nothing to plan")
            bad = len(parsed.errors)
            requests = []
            for start in range(0, len(parsed.rows), chunk_size):
                rows = parsed.rows[start : start + chunk_size]
                items = [row.spec.model_dump(mode="json", exclude_none=True) for row in rows]
                requests.append(({"items": items}, [row.line for row in rows]))
        code = _plan_and_show(requests, results, show_all=show_all, timeout=timeout, target=(api, token, state_dir))
    raise typer.Exit(EXIT_SOME_FAILED if bad else code)


def _plan_and_show(
    requests: list[tuple[dict, list[int]]],
    results: Path | None,
    *,
    show_all: bool,
    timeout: float,
    target: tuple[str | None, str | None, Path | None],
) -> int:
    outcome = planning.PlanOutcome()
    with _errors(), _client(*target) as client, console.status("Planning...") as status:
        for body, lines in requests:
            # Each run plans afresh (IMS and the quota change): a key of its own, used only by this request.
            key = f"imsrep-plan:{secrets.token_hex(16)}"

            def progress(shown: dict, status: Status = status) -> None:
                status.update(f"Planning... {shown['plan_id']}: {shown['state']}, {shown.get('listed', 0)} listed")

            plan, verdicts, _ = planning.run_plan(client, body, key, timeout, progress)
            planning.add(outcome, plan, verdicts, lines)
    shown = outcome.verdicts if show_all else outcome.refused
    if shown:
        title = "Every item" if show_all else "Items that would not be copied"
        console.print(planning.verdicts_table(shown, title))
    if outcome.refused:
        console.print(planning.reasons_table(outcome))
    console.print(planning.summary_table(outcome))
    for message in outcome.messages:
        err.print(f"[yellow]{message}[/]", highlight=False)
    if note := planning.distribution_note(outcome):
        console.print(note, soft_wrap=True, highlight=False)
    if members := planning.share_targets([body for body, _ in requests]):
        projects = f"{len(members)} project{'' if len(members) == 1 else 's'} ({', '.join(members)})"
        console.print(f"Sharing with {projects} is not foreseen: IMS checks a member project only when a copy is "
                      "shared, and a project it refuses leaves the copy made and the item NOT_SHARED.",
                      soft_wrap=True, highlight=False)  # fmt: skip
    copies = len(outcome.verdicts) - len(outcome.refused)
    items = len(outcome.verdicts)
    console.print(
        f"{items} item{'' if items == 1 else 's'}: {copies} would copy, {len(outcome.refused)} refused, "
        f"{outcome.over_quota} over the image quota (plan {', '.join(outcome.plan_ids)}; nothing was copied)",
        soft_wrap=True,
    )
    if results:
        write_results(results, [ItemResult.of_verdict(v) for v in outcome.verdicts])
        console.print(f"Results written to {results}")
    return EXIT_OK if outcome.all_copy else EXIT_SOME_FAILED


def _selection_line(batch: dict) -> str:
    selection = batch.get("selection") or {}
    line = (
        f"Selection {selection.get('state')}: {selection.get('listed', 0)} images listed, "
        f"{selection.get('matched', 0)} matched, {selection.get('created', 0)} items"
    )
    return line + (f"; {selection['message']}" if selection.get("message") else "")


@app.command()
def status(
    batch_id: str,
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="Only the items that did not end complete: no copy (failed, rejected, cancelled), or a copy whose "
            "tags or sharing failed",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the batch and all its items, each with its history, as JSON")
    ] = False,
    results: Annotated[Path | None, typer.Option("--results", help="Write the items shown (.csv or .json)")] = None,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Show a batch: counts by state and every item (exit 0 only when all of them succeeded)."""
    with _errors(), _client(api, token, state_dir) as client:
        batch = client.batch(batch_id)
        # Histories come with each page of items (one more Redis round trip a page), and only for JSON to read.
        items = list(client.items(batch_id, history=as_json))
    if failed:
        items = [i for i in items if i["state"] in ENDED and not ItemResult.of(i).complete]  # what exits 1
    if results:
        write_results(results, [ItemResult.of(item) for item in items])
        err.print(f"Results written to {results}")
    if as_json:
        print(json.dumps({"batch": batch, "items": items}, indent=2))
    else:
        console.print(items_table(items, f"Batch {batch_id}"))
        _print_hints(items)
        console.print(summary_table([ItemResult.of(i) for i in items], title="By state"))
    raise typer.Exit(_batch_exit(batch, items))


def _print_hints(rows: list[dict]) -> None:
    """What each distinct wait among the rows shown is, and what to do about it."""
    for text in hints(rows):
        console.print(text, style="yellow", markup=False, highlight=False, soft_wrap=False)


def _batch_exit(batch: dict, items: list[dict]) -> int:
    """0 when every item succeeded with all its follow-ups (a copy whose sharing failed says so: 1)."""
    all_ok = batch["done"] and batch["counts"].get("succeeded", 0) == batch["total"]
    failed_selection = (batch.get("selection") or {}).get("state") == "failed"
    ok = all_ok and not failed_selection and all(ItemResult.of(item).complete for item in items)
    return EXIT_OK if ok else EXIT_SOME_FAILED


@app.command()
def item(
    item_id: Annotated[str, typer.Argument(help="The item's ID (imsrep status BATCH_ID lists them)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the item as the API shows it (with history)")] = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Show one item: what was asked, where it stands (and what it waits for), its IMS job, its tags and sharing,
    its history and, when it ended short, what to do. Exit 0 when it succeeded with everything asked, 1 otherwise
    (still under way included), 2 for an unknown item."""
    with _errors(), _client(api, token, state_dir) as client:
        shown = client.item(item_id)
    if as_json:
        print(json.dumps(shown, indent=2))
    else:
        console.print(item_view(shown))
    raise typer.Exit(EXIT_OK if ItemResult.of(shown).complete else EXIT_SOME_FAILED)


@app.command("watch")
def watch_command(batch_id: str, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """Show a live progress bar until every item of the batch is done."""
    with _errors(), _client(api, token, state_dir, patient=True) as client, _watching([batch_id]):
        watch(client, [batch_id], console)
        items = list(client.items(batch_id))
        batch = client.batch(batch_id)
    console.print(summary_table([ItemResult.of(i) for i in items]))
    if (distributions := distributions_table(items)) is not None:
        console.print(distributions)
    raise typer.Exit(_batch_exit(batch, items))


@app.command()
def batches(
    state: Annotated[str | None, typer.Option(help="running or finished")] = None,
    label: Annotated[str | None, typer.Option(help="Only batches with this label")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON")] = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """List batches, newest first: state, label, counts."""
    with _errors(), _client(api, token, state_dir) as client:
        found = list(client.batches(state=state, label=label, limit=limit))
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        console.print(batches_table(found))


@app.command()
def delete(batch_id: str, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """Delete a finished batch and its items (a batch with items still under way is refused)."""
    with _errors(), _client(api, token, state_dir) as client:
        client.delete(batch_id)
    console.print(f"deleted batch {batch_id}")


@app.command()
def cancel(batch_id: str, api: ApiUrl = None, token: Token = None, state_dir: StateDir = None) -> None:
    """Cancel every item of the batch that has not reached IMS yet (a running copy cannot be stopped)."""
    with _errors(), _client(api, token, state_dir) as client:
        outcome = client.cancel(batch_id)
    console.print(outcome.get("message") or f"cancelled {outcome.get('cancelled', 0)} items")


@app.command()
def retry(
    batch_id: str,
    cancelled: Annotated[
        bool, typer.Option("--cancelled", help="Also resume the cancelled items (validated again, then copied)")
    ] = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Retry the batch's failed items as a new attempt; --cancelled resumes its cancelled items too."""
    with _errors(), _client(api, token, state_dir) as client:
        outcome = client.retry(batch_id, cancelled=cancelled)
        message = f"retried {outcome.get('retried', 0)} failed items"
        if cancelled:
            message += f" and resumed {outcome.get('resumed', 0)} cancelled items"
        message += f" of batch {batch_id}"
        if not cancelled and (left := client.batch(batch_id).get("counts", {}).get("cancelled", 0)):
            message += f"; {left} cancelled items stay cancelled: imsrep retry --cancelled {batch_id} resumes them"
    console.print(message, highlight=False, soft_wrap=True)


@app.command()
def accounts(
    check: Annotated[
        bool, typer.Option("--check", help="First have a worker check each account's credentials (one read call each)")
    ] = False,
    account: Annotated[str | None, typer.Option("--account", help="Only this account")] = None,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """Each account's credentials, image quota, slots (and those taken elsewhere), outage and waiting items.

    Exit 0 when every account shown is usable (credentials not refused, no outage), 1 otherwise, 2 for an --account
    that is not configured."""
    with _errors(), _client(api, token, state_dir) as client:
        shown = client.accounts(account)  # an unknown account is refused before any check is asked for
        if check:
            shown = _check_accounts(client, account)
    console.print(accounts_table(shown))
    _print_hints(shown)
    usable = all(a["credentials"]["state"] != "refused" and a["outage"]["state"] == "closed" for a in shown)
    raise typer.Exit(EXIT_OK if usable else EXIT_SOME_FAILED)


def _check_accounts(client: ApiClient, account: str | None = None) -> list[dict]:
    """Have a worker check the accounts' credentials (one signed read each); the accounts once it has."""
    started = datetime.now(timezone.utc)  # before asking: a held account's check is done in a moment
    asked = set(client.check_accounts(account))
    wait_until(lambda: _checked(client.accounts(), asked, started), 60, "the credentials checks")
    return client.accounts(account)


def _checked(accounts: list[dict], asked: set[str], since: datetime) -> bool:
    done = {
        a["name"] for a in accounts if (at := a["credentials"]["checked_at"]) and datetime.fromisoformat(at) >= since
    }
    return asked <= done


@app.command()
def audit(
    principal: Annotated[str | None, typer.Option(help="Only this principal's calls")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action: batch.submit, batch.cancel, ...")] = None,
    batch: Annotated[str | None, typer.Option(help="Only the calls about this batch or plan")] = None,
    outcome: Annotated[str | None, typer.Option(help="Only calls that ended so: ok, forbidden, not_found, ...")] = None,
    since: Annotated[str | None, typer.Option(help="Not before this time (ISO 8601, UTC if no zone)")] = None,
    until: Annotated[str | None, typer.Option(help="Not after this time (ISO 8601, UTC if no zone)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON")] = False,
    api: ApiUrl = None,
    token: Token = None,
    state_dir: StateDir = None,
) -> None:
    """The audit trail, newest first: who submitted, cancelled, retried or deleted what, and who was refused (an
    admin's token only)."""
    filters = {"principal": principal, "action": action, "batch": batch, "outcome": outcome}
    with _errors(), _client(api, token, state_dir, admin=True) as client:
        found = list(client.audit(limit=limit, since=since, until=until, **filters))
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        console.print(audit_table(found))


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the stack running until Ctrl-C")] = False,
    state_dir: Annotated[Path | None, typer.Option(help="Where the demo keeps its data [<state dir>/demo]")] = None,
) -> None:
    """Run the local stack on the simulator, submit a batch covering every scenario and refusal, and check it."""
    with _errors(), sigterm_as_interrupt():
        raise typer.Exit(run_demo(state_dir or state_dir_default() / "demo", console, keep=keep))


# Registered last: its commands use this module's options and helpers.
from cli.policy_commands import policy_app  # noqa: E402

app.add_typer(policy_app, name="policy")
