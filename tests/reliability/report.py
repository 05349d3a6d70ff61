"""Turn a reliability run's summary (JSON, written by the tests) into the table of docs/reliability.md.

    IMSREP_RELIABILITY_SUMMARY=/tmp/rel.json .venv/bin/pytest tests/reliability
    .venv/bin/python tests/reliability/report.py /tmp/rel.json [--write docs/reliability.md]

``--write`` replaces what lies between the two ``reliability-table`` markers of that file; without it the table is
printed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- reliability-table:begin -->", "<!-- reliability-table:end -->"
EXTRA = ("worker_kills", "tagged", "api_status_while_down", "ims_failed_jobs", "messages_duplicated", "duplicates_run",
         "copies_adopted", "reconciler_repairs")  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| Scenario | Faults injected | Items | Lost | Duplicated | Stuck | Ended | Peak jobs | Slots left | "
        "Also seen | Seconds | Reproduce |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ended = ", ".join(f"{n} {state}" for state, n in sorted(r["by_state"].items()))
        seen = "; ".join(f"{key} {json.dumps(r[key])}" for key in EXTRA if r.get(key))
        lines.append(
            f"| {r['scenario']} | {r['faults']} | {r['items']} | {r['lost']} | {r['duplicated']} | {r['stuck']} | "
            f"{ended} | {r['peak_concurrent_jobs']} | {r['slots_held_at_end']} | {seen} | {r['seconds']} | "
            f"`{r['command']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", type=Path)
    parser.add_argument("--write", type=Path, help="the Markdown file whose marked table to replace")
    args = parser.parse_args()
    text = table(json.loads(args.summary.read_text()))
    if args.write is None:
        print(text)
        return
    doc = args.write.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{args.write} has no {BEGIN} ... {END} markers")
    args.write.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", doc))


if __name__ == "__main__":
    main()
