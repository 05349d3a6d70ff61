"""Cost flat in the number of accounts: many projects, every slot of every project busy, two copies per slot.

One run per account count (``--account-counts``, 1, 20, 100 and 200 by default): each project gets two items per
slot, so the same work per slot at every size; the worker's CPU per item must stay within 1.5x of one account's,
and the largest run (``--scale-copy-seconds``, 60 s copies: 1,000 concurrent copies at 200 projects) must keep
its slots busy (utilisation >= 0.95) in at most 3.5 IMS calls per item on this small machine.
"""

from __future__ import annotations

from bench import machine, measure
from bench.options import GIB, SLOT_LIMIT, BenchOptions
from bench.replication import replicate
from bench.report import Figure
from bench.stack import bench_stack, write_catalog


def run(opts: BenchOptions) -> list[Figure]:
    counts = [int(n) for n in opts.account_counts.split(",")]
    d, per_project = opts.scale_copy_seconds, 2 * SLOT_LIMIT
    figures: list[Figure] = []
    cpu: dict[int, float] = {}
    for count in counts:
        workdir = opts.workdir / f"accounts-{count}"
        workdir.mkdir(parents=True, exist_ok=True)
        accounts = [f"a{i:03d}" for i in range(count)]
        catalog = write_catalog(workdir / "catalog.json", [2 * GIB] * per_project)
        with bench_stack(workdir / "state", accounts, {"copy_seconds": d, "catalog": catalog}) as stack:
            out = replicate(stack, accounts, per_project, timeout=4 * d + 600, naive_items=0, naive_poll=1.0)
        name = f"accounts: {count} projects x {per_project} items, D = {d:g} s ({count * SLOT_LIMIT} slots)"
        cpu[count] = out.worker_cpu / max(len(out.items), 1)
        utilisation = measure.utilisation(out.jobs, SLOT_LIMIT * count)
        figures += [
            Figure(name, "slot utilisation", utilisation, goal=">= 0.95" if count == max(counts) else ""),
            Figure(name, "IMS calls per item", out.calls / max(out.succeeded, 1), goal="<= 3.5"),
            Figure(name, "worker CPU per item", cpu[count] * 1000, "ms"),
            Figure(name, "succeeded", out.succeeded, goal=f">= {len(out.items)}"),
            machine.figure(name, out.reference),
        ]
        if counts[0] != count:
            ratio = cpu[count] / cpu[counts[0]]
            figures.append(Figure(name, f"CPU per item / {counts[0]} account's", ratio, "x", goal="<= 1.5"))
    return figures
