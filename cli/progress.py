"""Showing batches: a live progress bar with counts by state while they run, a summary table when they are done."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from cli.api_client import ApiClient
from cli.results import ItemResult, followups_summary
from worker.domain.states import TERMINAL, ItemState

STATE_STYLE = {
    ItemState.SUCCEEDED.value: "green",
    ItemState.REJECTED.value: "yellow",
    ItemState.FAILED.value: "red",
    ItemState.CANCELLED.value: "magenta",
    "invalid": "red",
}
_TERMINAL = {s.value for s in TERMINAL}
_ORDER = [s.value for s in ItemState]


def styled_state(state: str) -> str:
    """The state in its colour (rich markup)."""
    style = STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def new_image(item: dict[str, Any]) -> str:
    """The copy's ID, and its region when that is not the source's."""
    image = item.get("new_image_id") or ""
    return f"{image} ({item['target_region']})" if image and item.get("target_region") else image


def short_time(iso: str) -> str:
    """An API time (ISO 8601, UTC) to the second: ``2026-01-31 12:00:05``."""
    return iso[:19].replace("T", " ")


def total_counts(statuses: Sequence[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for status in statuses:
        counts.update({state: n for state, n in status["counts"].items() if n})
    return counts


def describe_counts(counts: Counter[str]) -> str:
    parts = []
    for state in sorted(counts, key=lambda s: _ORDER.index(s) if s in _ORDER else len(_ORDER)):
        style = STATE_STYLE.get(state)
        text = f"{state} {counts[state]}"
        parts.append(f"[{style}]{text}[/]" if style else text)
    return "  ".join(parts)


class RateColumn(ProgressColumn):
    """Items finished per minute, over rich's recent window (a copy takes minutes, so per second reads as 0.0)."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{task.speed * 60:.1f}/min", style="progress.data.speed")


def watch(client: ApiClient, batch_ids: Sequence[str], console: Console, interval: float = 1.0) -> Counter[str]:
    """Poll the batches until every item is terminal, showing progress; return the final counts by state."""
    statuses = [client.batch(b) for b in batch_ids]
    total = sum(s["total"] for s in statuses)
    columns = (
        SpinnerColumn(),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=total)
        while True:
            counts = total_counts(statuses)
            done = sum(n for state, n in counts.items() if state in _TERMINAL)
            # A selecting batch grows while its selector's pages are listed.
            total = sum(s["total"] for s in statuses)
            progress.update(task, total=total, completed=done, description=describe_counts(counts))
            if all(s["done"] for s in statuses):
                return counts
            time.sleep(interval)
            statuses = [client.batch(b) for b in batch_ids]


def summary_table(results: Sequence[ItemResult], title: str = "Summary") -> Table:
    """Counts by state and reason."""
    table = Table(title=title)
    table.add_column("State")
    table.add_column("Reason")
    table.add_column("Items", justify="right")
    tally = Counter((r.state, r.reason or "") for r in results)
    for (state, reason), n in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(styled_state(state), reason, str(n))
    table.add_section()
    table.add_row("total", "", str(len(results)))
    return table


def items_table(items: Sequence[dict[str, Any]], title: str) -> Table:
    """One row per item, for ``imsrep status``."""
    table = Table(title=title)
    for column in ("Item", "Image", "State", "Reason", "New image", "Tags and sharing", "Message"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            item["item_id"],
            item["image_id"],
            styled_state(item["state"]),
            item.get("reason") or "",
            new_image(item),
            followups_summary(item.get("followups")) or "",
            item.get("message") or "",
        )
    return table


def batches_table(batches: Sequence[dict[str, Any]]) -> Table:
    """One row per batch, for ``imsrep batches``."""
    table = Table(title="Batches, newest first")
    for column in ("Batch", "Created", "Label", "State", "Items", "Succeeded", "Not copied"):
        table.add_column(
            column, overflow="fold", justify="right" if column in ("Items", "Succeeded", "Not copied") else "left"
        )
    for batch in batches:
        counts = batch["counts"]
        ended = sum(counts.get(s, 0) for s in ("failed", "rejected", "cancelled"))
        style = "green" if batch["state"] == "finished" else "yellow"
        table.add_row(
            batch["batch_id"],
            short_time(batch["created_at"]),
            batch.get("label") or "",
            f"[{style}]{batch['state']}[/]",
            str(batch["total"]),
            str(counts.get("succeeded", 0)),
            str(ended),
        )
    return table


def accounts_table(accounts: Sequence[dict[str, Any]]) -> Table:
    """One row per account and mode, for ``imsrep accounts``."""
    table = Table(title="Accounts")
    for column in ("Account", "Mode", "Credentials", "Quota", "Slots", "Outage", "Waiting", "Drains in"):
        table.add_column(column, overflow="fold")
    for a in accounts:
        quota = a["quota"]
        slots = a["slots"]
        outage = a["outage"]
        waiting = f"{a['waiting']}" + (f" ({a['blocked_by']})" if a["blocked_by"] else "")
        table.add_row(
            a["name"],
            a["mode"],
            a["credentials"]["state"] + (f": {a['credentials']['message']}" if a["credentials"]["message"] else ""),
            "-" if quota["limit"] is None else f"{quota['used']}/{quota['limit']}",
            f"{slots['in_use']}/{slots['limit']}"
            + (f", {slots['taken_by_others']} elsewhere" if slots["taken_by_others"] else ""),
            outage["state"] + (f" (next probe {outage['next_probe_at']})" if outage["next_probe_at"] else ""),
            waiting,
            "-" if a["drain_seconds"] is None else f"{a['drain_seconds']:.0f}s",
        )
    return table
