"""Turn a reliability run's summary (JSON, written by the tests) into the table of docs/reliability.md.

    IMSREP_RELIABILITY_SUMMARY=/tmp/rel.json .venv/bin/pytest tests/reliability
    .venv/bin/python tests/reliability/report.py /tmp/rel.json [MORE.json ...] [--write docs/reliability.md]

Several summaries (runs with other settings, such as ten-minute outages) make one table, in the order given.

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
         "copies_adopted", "recovery_to_first_copy_seconds", "most_of_ours_while_held",
         "recovery_to_first_extra_copy_seconds", "copy_calls_refused_for_quota", "ims_copy_jobs", "transitions_lost",
         "reconciler_repairs", "api_answers_during", "readyz_during", "refusal_log_lines", "refusal_episodes",
         "restart_s", "resumed_median_s", "resumed_by_state_s", "finished_s", "terminal_at_each_freeze",
         "hard_time_limits", "soft_time_limits", "leases_released_for_holders")  # fmt: skip
# Seconds from the fault: until Sentinel named a new master, until the API answered 202 again, until every item in
# flight at the fault had moved on. A scenario with two faults has first_ and second_ figures.
TIMINGS = ("failover_s", "intake_s", "resumed_s")


def _timing(row: dict[str, Any], key: str) -> str:
    found = [row[k] for k in (key, f"first_{key}", f"second_{key}") if row.get(k) is not None]
    return ", ".join(str(v) for v in found) or "-"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| Scenario | Faults injected | Items | Lost | Duplicated | Stuck | Ended | Peak jobs | Slots left | "
        "Failover s | Intake back s | Resumed s | Also seen | Seconds | Reproduce |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ended = ", ".join(f"{n} {state}" for state, n in sorted(r["by_state"].items()))
        seen = "; ".join(f"{key} {json.dumps(r[key])}" for key in EXTRA if r.get(key))
        timings = " | ".join(_timing(r, key) for key in TIMINGS)
        lines.append(
            f"| {r['scenario']} | {r['faults']} | {r['items']} | {r['lost']} | {r['duplicated']} | {r['stuck']} | "
            f"{ended} | {r['peak_concurrent_jobs']} | {r['slots_held_at_end']} | {timings} | {seen} | "
            f"{r['seconds']} | `{r['command']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", type=Path, nargs="+")
    parser.add_argument("--write", type=Path, help="the Markdown file whose marked table to replace")
    args = parser.parse_args()
    text = table([row for path in args.summary for row in json.loads(path.read_text())])
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
