"""Per-item results: one row per manifest row, written as CSV or JSON (by the file's extension)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

COLUMNS = ("line", "item_id", "image_id", "state", "reason", "message", "new_image_id")
INVALID = "invalid"  # the state of a manifest row that was never submitted


@dataclass(frozen=True)
class ItemResult:
    line: int | None
    item_id: str | None
    image_id: str | None
    state: str
    reason: str | None = None
    message: str | None = None
    new_image_id: str | None = None

    @classmethod
    def of(cls, item: dict[str, Any], line: int | None = None) -> ItemResult:
        """From an item as the API shows it."""
        return cls(
            line=line,
            item_id=item.get("item_id"),
            image_id=item.get("image_id"),
            state=item["state"],
            reason=item.get("reason"),
            message=item.get("message"),
            new_image_id=item.get("new_image_id"),
        )


def write_results(path: Path, results: Sequence[ItemResult]) -> None:
    rows = [asdict(r) for r in sorted(results, key=lambda r: (r.line is None, r.line or 0))]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
