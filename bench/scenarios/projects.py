"""Goals 1, 2 and 5 across many projects: every project's 5 slots busy at once on this small machine."""

from __future__ import annotations

from bench.options import GIB, SLOT_LIMIT, BenchOptions
from bench.replication import NAIVE, replicate
from bench.report import Figure
from bench.scenarios.slots import replication_figures
from bench.stack import bench_stack, write_catalog


def run(opts: BenchOptions) -> list[Figure]:
    workdir = opts.workdir / "projects"
    workdir.mkdir(parents=True, exist_ok=True)
    accounts = [f"p{i:02d}" for i in range(1, opts.projects + 1)]
    catalog = write_catalog(workdir / "catalog.json", [2 * GIB] * max(opts.project_items, opts.naive_items))
    simulator = {"copy_seconds": opts.copy_seconds, "catalog": catalog}
    with bench_stack(workdir / "state", [*accounts, NAIVE], simulator) as stack:
        out = replicate(
            stack,
            accounts,
            opts.project_items,
            timeout=opts.project_items * opts.copy_seconds * 4 / SLOT_LIMIT + 180,
            naive_items=opts.naive_items,
            naive_poll=opts.naive_poll,
        )
    name = f"projects: {opts.projects} projects x {opts.project_items} items, D = {opts.copy_seconds:g} s"
    return replication_figures(name, out, opts.copy_seconds, ">= 0.95")
