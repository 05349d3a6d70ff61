"""``imsrep demo``: the local stack on the simulator, one batch that exercises every scenario of Huawei's
replication guide and every refusal, a copy into a second region and an unencrypted copy shared with another
project, the progress bar, and a table of expected against actual outcomes.

The manifest is built at run time: image IDs are looked up by name in the simulator (a signed
``GET /v2/cloudimages?name=``, as against real IMS), written to ``<state dir>/demo-manifest.csv``, then read back and
submitted by the same code as ``imsrep submit``. ``examples/demo-manifest.csv`` is that file, checked in: the local
stack's simulator always serves the same project, and its image IDs derive from project and name, so they match.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cli import services
from cli.api_client import ApiClient, ApiTarget
from cli.manifest import read_manifest, write_manifest
from cli.progress import STATE_STYLE, summary_table, watch
from cli.results import ItemResult, write_results
from cli.services import SIMULATOR_SECOND_REGION, SIMULATOR_SHARE_PROJECT
from cli.stack import LocalStack, StackInfo, StackOptions
from cli.submission import collect_results, submit_rows
from config.settings import AccountSettings
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.ims.client import ImsClient

# A well-formed image ID the simulator's catalogue does not hold.
UNKNOWN_IMAGE_ID = "00000000-0000-4000-8000-00000000dead"
UNKNOWN = "no such image"

SIMULATOR_OPTIONS = {"copy_seconds": 3, "image_quota": 100_000}
# Poll soon and often: demo copies take seconds, not the minutes the defaults are made for.
DEMO_ENV = {"IMSREP_POLL_INITIAL_DELAY": "1", "IMSREP_POLL_MIN_INTERVAL": "0.5"}

OK, REJECTED = ItemState.SUCCEEDED.value, ItemState.REJECTED.value


@dataclass(frozen=True)
class Scenario:
    title: str
    image: str  # a name in the simulator's default catalogue, or UNKNOWN
    expected_state: str
    expected_reason: str | None = None
    name: str | None = None
    description: str | None = None
    kms_key: str | None = None
    target_region: str | None = None
    share_with: tuple[str, ...] | None = None
    tags: tuple[tuple[str, str], ...] | None = None  # a tuple: the scenario is frozen (hashable)

    def spec(self, image_id: str) -> ItemSpec:
        return ItemSpec(
            image_id=image_id,
            name=self.name,
            description=self.description,
            kms_key=self.kms_key,
            target_region=self.target_region,
            share_with=list(self.share_with) if self.share_with else None,
            tags=dict(self.tags) if self.tags else None,
        )


def _refused(title: str, image: str, reason: ReasonCode, **fields: str) -> Scenario:
    return Scenario(title, image, REJECTED, reason.value, **fields)


# Rows that copy the same source get distinct names, so no outcome depends on the order IMS sees them in.
SCENARIOS: list[Scenario] = [
    Scenario("decrypt: encrypted source, no key", "euleros-encrypted", OK),
    Scenario("re-key: encrypted source, new key", "euleros-encrypted", OK, name="euleros-app-key", kms_key="app-key"),
    Scenario("encrypt: plain source, ims/default", "ubuntu-22.04-web", OK, kms_key="ims/default"),
    Scenario("Fast Create for a legacy image", "centos-6-legacy", OK),
    Scenario("plain copy, default name", "centos-7-app", OK),
    Scenario("plain copy, default name", "debian-12-base", OK),
    Scenario("exactly 128 GB: allowed", "edge-128g", OK),
    Scenario(
        "custom name and description",
        "ubuntu-22.04-web",
        OK,
        name="web-golden",
        description="Golden web image, replicated by the imsrep demo",
    ),
    _refused("full-ECS image", "ecs-full-backup", ReasonCode.FULL_ECS_IMAGE),
    _refused("ISO image", "install-iso", ReasonCode.ISO_IMAGE),
    _refused("larger than 128 GB", "bigdata-200g", ReasonCode.IMAGE_TOO_LARGE),
    _refused("not active (still uploading)", "uploading-image", ReasonCode.IMAGE_NOT_ACTIVE),
    _refused("unknown image", UNKNOWN, ReasonCode.IMAGE_NOT_FOUND),
    _refused(
        "disabled key", "ubuntu-22.04-web", ReasonCode.KEY_DISABLED, name="web-disabled-key", kms_key="disabled-key"
    ),  # fmt: skip
    _refused(
        "unknown key", "ubuntu-22.04-web", ReasonCode.KEY_NOT_FOUND, name="web-unknown-key", kms_key="no-such-key"
    ),  # fmt: skip
    Scenario(
        f"cross-region copy to {SIMULATOR_SECOND_REGION}", "debian-12-base", OK, target_region=SIMULATOR_SECOND_REGION
    ),  # fmt: skip
    _refused(
        "encrypted source across regions",
        "euleros-encrypted",
        ReasonCode.ENCRYPTED_CROSS_REGION,
        name="euleros-south",
        target_region=SIMULATOR_SECOND_REGION,
    ),  # fmt: skip
    Scenario(
        "decrypt, then tag and share with another project",
        "euleros-encrypted",
        OK,
        name="euleros-shared",
        share_with=(SIMULATOR_SHARE_PROJECT,),
        tags=(("purpose", "shared"),),
    ),  # fmt: skip
]


def simulator_account(info: StackInfo) -> AccountSettings:
    """The stack's simulator as an account, to query it like IMS (``in_region`` reaches its other regions)."""
    return AccountSettings(
        region=info.simulator_region,
        project_id=info.simulator_project_id,
        ims_endpoint=info.simulator_url,
        kms_endpoint=info.simulator_url,
        iam_endpoint=info.simulator_url,
        access_key=info.simulator_access_key,
        secret_key=info.simulator_secret_key,
        regions={region: {"ims_endpoint": endpoint} for region, endpoint in info.simulator_regions.items()},
    )


def resolve_image_ids(account: AccountSettings, names: Sequence[str]) -> dict[str, str]:
    ids = {UNKNOWN: UNKNOWN_IMAGE_ID}
    with ImsClient(account, connect_timeout=5, read_timeout=30) as ims:
        for name in set(names) - {UNKNOWN}:
            found = ims.list_images(name=name)
            if len(found) != 1:
                raise RuntimeError(f"the simulator should hold exactly one image named {name!r}, found {len(found)}")
            ids[name] = found[0].id
    return ids


def build_specs(image_ids: dict[str, str], scenarios: Sequence[Scenario] = SCENARIOS) -> list[ItemSpec]:
    return [s.spec(image_ids[s.image]) for s in scenarios]


def outcome_table(scenarios: Sequence[Scenario], results: Sequence[ItemResult], first_line: int) -> tuple[Table, int]:
    """Expected against actual, one row per scenario (matched by manifest line); also the number of mismatches."""
    by_line = {r.line: r for r in results}
    table = Table(title="Demo: expected vs actual")
    table.add_column("#", justify="right")
    table.add_column("Scenario (source image)", ratio=3)
    table.add_column("Expected", ratio=2)
    table.add_column("Actual", ratio=2)
    table.add_column("New image / message", overflow="fold", ratio=3)
    mismatches = 0
    for i, s in enumerate(scenarios):
        r = by_line.get(first_line + i)
        ok = r is not None and (r.state, r.reason) == (s.expected_state, s.expected_reason)
        mismatches += not ok
        if r is None:
            actual, detail = "[red]✗ missing[/]", ""
        else:
            style = STATE_STYLE.get(r.state, "")
            actual = f"[green]✓[/] [{style}]{r.state}[/]" if ok else f"[red]✗[/] [{style}]{r.state} {r.reason or ''}[/]"
            detail = r.message or ""
            if r.new_image_id:
                where = f" in {r.target_region}" if r.target_region else ""
                detail = f"{r.new_image_id}{where}" + (f"; {r.followups}" if r.followups else "")
        expected = f"{s.expected_state} {s.expected_reason or ''}".strip()
        table.add_row(str(i + 1), f"{s.title} [dim]({s.image})[/]", expected, actual, detail)
    return table, mismatches


def run_demo(state_dir: Path, console: Console, *, keep: bool = False, ports: dict[str, int] | None = None) -> int:
    """Run the whole demo; return the exit code (0 only when every row ended as expected)."""
    options = StackOptions(
        state_dir=state_dir,
        demo=True,
        simulator=dict(SIMULATOR_OPTIONS),
        simulator_project_ids=services.EXAMPLE_PROJECTS,
        simulator_regions=services.EXAMPLE_REGIONS,
        env=dict(DEMO_ENV),
    )
    if ports:
        options.ports.update(ports)
    stack = LocalStack(options)
    started = time.monotonic()
    try:
        with console.status("Starting Redis, the simulator, the API, a worker, beat and Flower..."):
            info = stack.start()
        console.print(f"Stack ready in {time.monotonic() - started:.1f}s; logs in {info.log_dir}")
        manifest_path = Path(info.state_dir) / "demo-manifest.csv"
        image_ids = resolve_image_ids(simulator_account(info), [s.image for s in SCENARIOS])
        write_manifest(manifest_path, build_specs(image_ids))
        manifest = read_manifest(manifest_path)
        console.print(f"Submitting {len(manifest.rows)} items from {manifest_path}")
        with ApiClient(ApiTarget(info.api_url, info.api_token)) as client:
            submission = submit_rows(client, manifest.rows)
            batch_started = time.monotonic()
            watch(client, submission.batch_ids, console, interval=0.5)
            elapsed = time.monotonic() - batch_started
            results = collect_results(client, submission, manifest.errors)
        write_results(Path(info.state_dir) / "demo-results.csv", results)
        table, mismatches = outcome_table(SCENARIOS, results, first_line=manifest.rows[0].line)
        console.print(table)
        console.print(summary_table(results))
        console.print(f"Batch {', '.join(submission.batch_ids)} finished in {elapsed:.1f}s; "
                      f"results in {Path(info.state_dir) / 'demo-results.csv'}")  # fmt: skip
        console.print(
            f"Flower: {info.flower_url}  user [bold]{info.flower_user}[/]  password [bold]{info.flower_password}[/]"
        )
        if mismatches:
            console.print(f"[red]{mismatches} of {len(SCENARIOS)} rows did not end as expected.[/]")
        else:
            console.print(f"[green]All {len(SCENARIOS)} rows ended as expected.[/]")
        if keep:
            _keep_running(stack, info, console)
        return 1 if mismatches else 0
    except KeyboardInterrupt:
        console.print("Interrupted; stopping the stack.")
        return 1
    finally:
        stack.stop()


def _keep_running(stack: LocalStack, info: StackInfo, console: Console) -> None:
    console.print(f"API: {info.api_url}  token [bold]{info.api_token}[/]  (also in {info.state_dir}/stack.json)")
    console.print("The stack keeps running (--keep); press Ctrl-C to stop it.")
    try:
        dead = stack.supervise()
        console.print(f"[red]{dead.name} exited; stopping.[/]")
    except KeyboardInterrupt:
        console.print("Stopping the stack.")
