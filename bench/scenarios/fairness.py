"""Fair share between batches: a small batch submitted behind a large one in the same account starts at the next
slot hand-off, and finishes within twice the time it takes alone (issue: "a small batch waits behind a big one")."""

from __future__ import annotations

import time

from bench.options import GIB, SLOT_LIMIT, BenchOptions
from bench.report import Figure
from bench.stack import BenchStack, bench_stack, write_catalog
from cli.processes import wait_until


def run(opts: BenchOptions) -> list[Figure]:
    workdir = opts.workdir / "fairness"
    workdir.mkdir(parents=True, exist_ok=True)
    d, small, large = opts.copy_seconds, opts.fair_small_items, opts.fair_large_items
    catalog = write_catalog(workdir / "catalog.json", [2 * GIB] * (large + 2 * small))
    with bench_stack(workdir / "state", ["default"], {"copy_seconds": d, "catalog": catalog}) as stack:
        ids = stack.image_ids("default")
        alone = _makespan(stack, ids[:small], d)  # the small batch on an idle account
        big, _ = stack.submit([{"image_id": i} for i in ids[small : small + large]])
        # Under way, with every slot busy and hand-offs at their steady pace (half of a small large batch).
        under_way = small + min(3 * SLOT_LIMIT, large // 2)
        wait_until(lambda: _copies(stack) >= under_way, large * d + 60, "the large batch under way")
        behind = _makespan(stack, ids[small + large : 2 * small + large], d)
        stack.api.post(f"/v1/batches/{big['batch_id']}/cancel").raise_for_status()
        stack.wait_batch(big["batch_id"], d * 4 + 60)
    name = f"fairness: {small} items submitted behind {large} in the same account, D = {d:g} s"
    return [
        Figure(name, "small batch alone: makespan", alone, "s"),
        Figure(name, "small batch behind the large one: makespan", behind, "s"),
        Figure(name, "behind / alone", behind / alone, "x", goal="<= 2"),
    ]


def _makespan(stack: BenchStack, image_ids: list[str], d: float) -> float:
    """Seconds from submitting a batch of ``image_ids`` to its last verdict."""
    started = time.monotonic()
    accepted, _ = stack.submit([{"image_id": i} for i in image_ids])
    stack.wait_batch(accepted["batch_id"], d * 20 + 60)
    return time.monotonic() - started


def _copies(stack: BenchStack) -> int:
    return len([job for job in stack.jobs() if job["status"] == "SUCCESS"])
