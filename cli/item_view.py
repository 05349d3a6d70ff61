"""Showing one item for ``imsrep item``: what was asked, where it stands, its IMS job, its history and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cli.progress import new_image, short_time, styled_state
from cli.results import followups_summary


def item_view(item: dict[str, Any]) -> Group:
    """The item's fields, then its history."""
    return Group(_fields(item), _history(item.get("history") or []))


def _fields(item: dict[str, Any]) -> Table:
    table = Table(title=f"Item {item['item_id']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in _rows(item):
        if value:  # text as sent, never read as rich markup (a message may hold brackets)
            table.add_row(label, value if isinstance(value, Text) else Text(value))
    return table


def _rows(item: dict[str, Any]) -> list[tuple[str, str | Text | None]]:
    state = item["state"]
    attempt = f" (attempt {item['attempt']})" if item.get("attempt", 1) > 1 else ""
    reason, message = item.get("reason"), item.get("message")
    why = f"{reason}: {message}" if reason and message else reason or message
    # A failed item is retried, a cancelled one resumed (a rejected one is fixed and submitted again, as its next
    # step says).
    retry = {
        "failed": f"imsrep retry {item['batch_id']} (retries every failed item of the batch)",
        "cancelled": f"imsrep retry --cancelled {item['batch_id']} (resumes every cancelled item of the batch)",
    }.get(state)
    return [
        ("Batch", item["batch_id"] + (f", line {item['line']} of its manifest" if item.get("line") else "")),
        ("Account", f"{item['account']} ({item['mode']})"),
        ("Source image", item["image_id"] + (f" ({item['source_name']})" if item.get("source_name") else "")),
        ("Name", _name(item)),
        ("KMS key", item.get("kms_key") or "none: an unencrypted copy"),
        ("Destination", _destination(item)),
        ("Share with", ", ".join(item.get("share_with") or [])),
        ("Distribute to", ", ".join(r["account"] for r in item.get("distribute") or [])),
        ("Receiver of", item.get("parent_id")),
        ("Tags", ", ".join(f"{k}={v}" for k, v in (item.get("tags") or {}).items())),
        ("State", Text.assemble(Text.from_markup(styled_state(state)), attempt)),
        ("Reason", why),
        ("Waiting on", ": ".join(filter(None, (item.get("blocked_by"), item.get("blocked_hint"))))),
        ("IMS job", _job(item)),
        ("New image", new_image(item)),
        ("Tags and sharing", followups_summary(item.get("followups"))),
        ("Next step", item.get("next_step")),
        ("Retry", retry),
    ]


def _name(item: dict[str, Any]) -> str:
    asked, resolved = item.get("name"), item.get("target_name")
    if asked:
        return asked
    return f"the default: {resolved}" if resolved else "the default (copy_<region>_<source name>)"


def _destination(item: dict[str, Any]) -> str:
    region = item.get("target_region")
    if not region:
        return "the account's own region and project"
    project = item.get("target_project") or f"{region} (the region's default)"
    if item.get("target_project_id"):
        project += f", ID {item['target_project_id']}"
    agency = f"; agency {item['agency']}" if item.get("agency") else ""
    return f"{region}, project {project}{agency}"


def _job(item: dict[str, Any]) -> str | None:
    if not item.get("job_id"):
        return None
    parts = [item["job_id"]]
    if item.get("progress_percent") is not None:
        parts.append(f"{item['progress_percent']:g} %")
    if item.get("job_started_at"):
        parts.append(f"started {short_time(item['job_started_at'])}")
    return ", ".join(parts)


def _history(history: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="History (UTC)", title_justify="left")
    for column in ("Time", "State", "Reason", "Message"):
        table.add_column(column, overflow="fold")
    for step in history:
        state = Text.from_markup(styled_state(step["state"]))
        table.add_row(short_time(step["at"]), state, step.get("reason") or "", Text(step.get("message") or ""))
    return table
