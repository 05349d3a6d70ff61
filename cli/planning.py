"""``imsrep plan``: ask the API for a plan (a dry run), wait for the workers to work it out, and show it: the items
that would not copy with their reasons, and per account the quota and a duration forecast.

A manifest longer than one request is planned in chunks; their summaries are added up, and the quota of an account
is weighed against all of its copies.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from cli.api_client import ApiCallError, ApiClient

PAGE = 1000


@dataclass
class PlanOutcome:
    plan_ids: list[str] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # with "line" when they came from a manifest
    summaries: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # a failed plan's reason, a selector stopped at the limit
    failed: bool = False

    @property
    def refused(self) -> list[dict[str, Any]]:
        return [v for v in self.verdicts if v["verdict"] != "copy"]

    @property
    def over_quota(self) -> int:
        return sum(a["quota"]["over_quota"] for a in self.accounts() if a.get("quota"))

    @property
    def all_copy(self) -> bool:
        return not self.failed and not self.refused and not self.over_quota

    def accounts(self) -> list[dict[str, Any]]:
        """Per account, the chunks added up: copies, refusals, the last quota read, forecasts by pool."""
        merged: dict[str, dict[str, Any]] = {}
        for summary in self.summaries:
            for entry in summary["accounts"]:
                into = merged.setdefault(entry["account"], {**entry, "would_copy": 0, "refused": 0, "forecast": {}})
                into["would_copy"] += entry["would_copy"]
                into["refused"] += entry["refused"]
                into["quota"] = entry.get("quota") or into.get("quota")
                for f in entry["forecast"]:
                    pool = into["forecast"].setdefault(f["pool"], {**f, "copies": 0, "seconds": 0.0})
                    pool["copies"] += f["copies"]
                    pool["seconds"] += f["seconds"]
        for entry in merged.values():
            quota = entry.get("quota")
            if quota:
                in_region = entry["forecast"].get(entry["account"], {}).get("copies", 0)
                over = in_region + quota["waiting_before"] - quota["headroom"]
                entry["quota"] = {**quota, "over_quota": max(0, over) if in_region else 0}
            entry["forecast"] = list(entry["forecast"].values())
        return sorted(merged.values(), key=lambda e: e["account"])


def run_plan(
    client: ApiClient, body: dict[str, Any], key: str, timeout: float, on_wait: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """Post a plan request and wait for it; returns the finished plan, its verdicts, and whether it was replayed."""
    accepted = client.post_batch({**body, "plan": True}, key)
    plan, verdicts = wait_plan(client, accepted["plan_id"], timeout, on_wait)
    return plan, verdicts, bool(accepted.get("replayed"))


def wait_plan(
    client: ApiClient, plan_id: str, timeout: float, on_wait: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Wait for a plan the workers work out; returns it finished, with its verdicts."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        plan = client.plan(plan_id, cursor=0, limit=1)
        on_wait(plan)
        if plan["state"] != "planning":
            break
        if time.monotonic() > deadline:
            raise ApiCallError(f"plan {plan_id} still being worked out after {timeout:.0f}s; see imsrep plan --show")
        time.sleep(delay)
        delay = min(2.0, delay * 1.5)
    return plan, list(client.plan_verdicts(plan_id))


def add(outcome: PlanOutcome, plan: dict[str, Any], verdicts: list[dict[str, Any]], lines: Sequence[int] = ()):
    outcome.plan_ids.append(plan["plan_id"])
    if plan["state"] == "failed":
        outcome.failed = True
    if plan.get("message"):
        outcome.messages.append(f"plan {plan['plan_id']}: {plan['message']}")
    if plan.get("summary"):
        outcome.summaries.append(plan["summary"])
    for verdict in verdicts:
        line = lines[verdict["index"]] if verdict["index"] < len(lines) else None
        outcome.verdicts.append({**verdict, "line": line})


def share_targets(bodies: Sequence[dict[str, Any]]) -> list[str]:
    """The projects the planned copies would be shared with (the manifest's items, or a selector's template)."""
    targets: set[str] = set()
    for body in bodies:
        for item in body.get("items") or [body.get("template") or {}]:
            targets.update(item.get("share_with") or ())
    return sorted(targets)


def verdicts_table(verdicts: Sequence[dict[str, Any]], title: str) -> Table:
    """One row per verdict; a column of the receivers each copy would be distributed to when any would be."""
    table = Table(title=title)
    for column in ("Line", "Image", "Source name", "Verdict", "Reason"):
        table.add_column(column, no_wrap=True)
    table.add_column("New name / why not", overflow="fold")
    distributes = any(v.get("receivers") for v in verdicts)
    if distributes:
        table.add_column("Receivers", overflow="fold")
    for v in verdicts:
        copy = v["verdict"] == "copy"
        row = [
            "" if v.get("line") is None else str(v["line"]),
            v["image_id"],
            v.get("source_name") or "",
            "[green]copy[/]" if copy else "[yellow]refused[/]",
            v.get("reason") or "",
            (v.get("target_name") or "") if copy else (v.get("message") or ""),
        ]
        table.add_row(*row, *([receivers_cell(v.get("receivers") or [])] if distributes else []))
    return table


def distribution_note(outcome: PlanOutcome) -> str | None:
    """What the copies that would be made would be distributed to (None: nothing distributes): the receivers by
    account, and that their keys and quotas are judged when the copies are made."""
    copies = [v for v in outcome.verdicts if v["verdict"] == "copy" and v.get("receivers")]
    if not copies:
        return None
    accounts = sorted({r["account"] for v in copies for r in v["receivers"]})
    count = sum(len(v["receivers"]) for v in copies)
    return (
        f"{len(copies)} cop{'y' if len(copies) == 1 else 'ies'} would be distributed: {count} receivers' copies in "
        f"{', '.join(accounts)}; each receiver's key and quota are judged when its copy is made."
    )


def receivers_cell(receivers: Sequence[dict[str, Any]]) -> str:
    """Each receiver as ``account`` with its region and key when given (``team-a/cn-south-1 key ims/team-a``)."""
    cells = []
    for r in receivers:
        where = f"{r['account']}/{r['region']}" if r.get("region") else r["account"]
        cells.append(f"{where} key {r['key']}" if r.get("key") else where)
    return ", ".join(cells)


def summary_table(outcome: PlanOutcome) -> Table:
    table = Table(title="Plan")
    for column in ("Account", "Would copy", "Refused", "Quota headroom", "Over quota", "Forecast"):
        table.add_column(column, overflow="fold")
    for entry in outcome.accounts():
        quota = entry.get("quota")
        headroom = "" if not quota else f"{quota['headroom']} of {quota['quota']}"
        if quota and quota["waiting_before"]:
            headroom += f" ({quota['waiting_before']} already waiting)"
        over = "" if not quota else str(quota["over_quota"])
        table.add_row(
            entry["account"],
            str(entry["would_copy"]),
            str(entry["refused"]),
            headroom,
            f"[red]{over}[/]" if quota and quota["over_quota"] else over,
            "\n".join(_forecast(f) for f in entry["forecast"]) or "-",
        )
    return table


def reasons_table(outcome: PlanOutcome) -> Table:
    table = Table(title="Refused, by reason")
    table.add_column("Reason")
    table.add_column("Items", justify="right")
    for reason, n in Counter(v.get("reason") for v in outcome.refused).most_common():
        table.add_row(reason or "", str(n))
    return table


def _forecast(f: dict[str, Any]) -> str:
    copies = f"{f['copies']} cop{'y' if f['copies'] == 1 else 'ies'}"
    return f"{copies} on {f['slots']} slots: about {duration(f['seconds'])} ({f['basis']})"


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
