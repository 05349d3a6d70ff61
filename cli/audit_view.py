"""The audit trail as a table, for ``imsrep audit``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from cli.progress import short_time

_COLUMNS = ("Time", "Principal", "Source", "Action", "Outcome", "Batch or plan", "Accounts", "Items", "Unencrypted",
            "Shared with", "Request ID", "Why refused")  # fmt: skip


def audit_table(records: Sequence[dict[str, Any]]) -> Table:
    """One row per record, newest first."""
    table = Table(title="Audit trail, newest first")
    for column in _COLUMNS:
        table.add_column(column, overflow="fold", justify="right" if column in ("Items", "Unencrypted") else "left")
    for r in records:
        style = "green" if r["outcome"] == "ok" else "red"
        unencrypted = "" if r["unencrypted_copies"] is None else str(r["unencrypted_copies"])
        if r["selector"] == "unencrypted":
            unencrypted += " + selector"
        # Values as sent, never read as rich markup (a detail may hold brackets).
        table.add_row(
            short_time(r["time"]),
            Text(r["principal"] or ""),
            Text(r["source"] or ""),
            r["action"],
            f"[{style}]{r['outcome']} {r['status']}[/]",
            r["batch_id"] or r["plan_id"] or "",
            Text(", ".join(r["accounts"])),
            "" if r["items"] is None else str(r["items"]),
            unencrypted.strip(),
            Text(", ".join(r["share_targets"])),
            Text(r["request_id"]),
            Text(r["detail"] or "", style="yellow"),
        )
    return table
