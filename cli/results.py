"""Per-item results: one row per manifest row, written as CSV or JSON (by the file's extension)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cli.csv_cells import neutralise

COLUMNS = (
    "line",
    "item_id",
    "image_id",
    "state",
    "reason",
    "message",
    "new_image_id",
    "target_region",
    "followups",
    # A distribution's receiver (docs/architecture.md): the item whose copy it received, its account, key and tags.
    "receiver_of",
    "account",
    "kms_key",
    "tags",
)
INVALID = "invalid"  # the state of a manifest row that was never submitted


def followups_summary(followups: dict[str, Any] | None) -> str | None:
    """One line for what was done to a copy once active: ``tags applied (2); shared with 0123…(pending)``."""
    if not followups:
        return None
    parts = []
    tags = followups.get("tags")
    if tags:
        if tags["status"] == "failed":
            missing = ", ".join(f"{k}={v}" for k, v in tags.get("not_applied", {}).items())
            parts.append(f"tags not applied: {missing}")
        else:
            parts.append(f"tags {tags['status']} ({len(tags.get('wanted', {}))})")
    share = followups.get("share")
    if share:
        members = ", ".join(f"{m['project_id']} ({m['status']})" for m in share.get("members", []))
        if share["status"] == "pending":
            parts.append("sharing pending")
        elif members:
            parts.append(f"shared with {members}")
        if share.get("not_shared") and share["status"] != "pending":
            parts.append(f"not shared with {', '.join(share['not_shared'])}")
    if distribution := followups.get("distribute"):
        parts.append(_distribution_summary(distribution))
    return "; ".join(parts)


def _distribution_summary(distribution: dict[str, Any]) -> str:
    """``distributed to 2 of 3 (team-c: KEY_NOT_FOUND)``: the receivers with a copy of their own, and the others."""
    receivers = distribution["receivers"]
    copied = sum(r["state"] == "succeeded" for r in receivers)
    others = [f"{r['account']}: {r['reason'] or r['state']}" for r in receivers if r["state"] != "succeeded"]
    summary = f"distributed to {copied} of {len(receivers)}" + (f" ({', '.join(others)})" if others else "")
    return summary + ("; share withdrawn" if distribution.get("withdrawn") else "")


def reason_of(item: dict[str, Any]) -> str | None:
    """An item's reason code; a waiting item's is what holds it (``blocked_by``: quota, outage...)."""
    return item.get("reason") or item.get("blocked_by")


@dataclass(frozen=True)
class ItemResult:
    line: int | None
    item_id: str | None
    image_id: str | None
    state: str
    reason: str | None = None
    message: str | None = None
    new_image_id: str | None = None
    target_region: str | None = None  # a cross-region copy's destination
    followups: str | None = None  # its tags and sharing, in a few words (``followups_summary``)
    receiver_of: str | None = None  # a receiver item: its parent (the distributed copy's item)
    account: str | None = None
    kms_key: str | None = None
    tags: str | None = None  # key=value pairs separated by ';', as a manifest takes them

    @property
    def complete(self) -> bool:
        """Succeeded with everything asked for: the copy, its tags, its sharing."""
        return self.state == "succeeded" and not self.reason

    @classmethod
    def of_verdict(cls, verdict: dict[str, Any]) -> ItemResult:
        """From a plan's verdict: state ``copy`` (the message names the copy) or ``refused``, nothing copied."""
        copy = verdict["verdict"] == "copy"
        return cls(
            line=verdict.get("line"),
            item_id=None,
            image_id=verdict["image_id"],
            state=verdict["verdict"],
            reason=verdict.get("reason"),
            message=f"would copy as {verdict.get('target_name')}" if copy else verdict.get("message"),
        )

    @classmethod
    def of(cls, item: dict[str, Any], line: int | None = None) -> ItemResult:
        """From an item as the API shows it; ``line`` when the caller knows it better than the item's own."""
        return cls(
            line=item.get("line") if line is None else line,
            item_id=item.get("item_id"),
            image_id=item.get("image_id"),
            state=item["state"],
            reason=reason_of(item),
            message=item.get("message"),
            new_image_id=item.get("new_image_id"),
            target_region=item.get("target_region"),
            followups=followups_summary(item.get("followups")),
            receiver_of=item.get("parent_id"),
            account=item.get("account"),
            kms_key=item.get("kms_key"),
            tags=";".join(f"{k}={v}" for k, v in (item.get("tags") or {}).items()) or None,
        )


def write_results(path: Path, results: Sequence[ItemResult]) -> None:
    """Every result as a row, by manifest line; in a CSV, a cell a spreadsheet would run as a formula starts with
    ``'`` (``neutralise``). JSON, read by programs, keeps every value as it is."""
    rows = [asdict(r) for r in sorted(results, key=lambda r: (r.line is None, r.line or 0))]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else neutralise(v) for k, v in row.items()} for row in rows)
