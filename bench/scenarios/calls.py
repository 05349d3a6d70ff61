"""Goal 3: IMS calls per succeeded item for long copies, against a fixed-interval poller on the same run.

The system replicates on one project while ``fixed_poller`` (the same ImsClient, polling every 10 s, 5 at a time
so it keeps pace) replicates the same number of images on another; the simulator counts every call per project.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench import measure
from bench.naive import fixed_poller
from bench.options import GIB, SLOT_LIMIT, BenchOptions
from bench.replication import replicate
from bench.report import Figure, fmt
from bench.stack import bench_stack, write_catalog

FIXED = "fixed"


def run(opts: BenchOptions) -> list[Figure]:
    workdir = opts.workdir / "calls"
    workdir.mkdir(parents=True, exist_ok=True)
    catalog = write_catalog(workdir / "catalog.json", [2 * GIB] * opts.long_items)
    simulator = {"copy_seconds": opts.long_copy_seconds, "catalog": catalog}
    with bench_stack(workdir / "state", ["default", FIXED], simulator) as stack:
        fixed_ids = stack.image_ids(FIXED)
        before = stack.stats()
        with ThreadPoolExecutor(1) as pool:
            fixed = pool.submit(fixed_poller, stack.account(FIXED), fixed_ids, opts.fixed_interval, SLOT_LIMIT)
            out = replicate(
                stack,
                ["default"],
                opts.long_items,
                timeout=opts.long_items * opts.long_copy_seconds * 3 / SLOT_LIMIT + 180,
                naive_items=0,
                naive_poll=0,
            )
            fixed_run = fixed.result()
        fixed_calls = measure.calls_between(before, stack.stats(), stack.projects[FIXED])
    per_fixed = fixed_calls / max(fixed_run.items, 1)
    name = f"calls: {opts.long_items} items, D = {opts.long_copy_seconds:g} s"
    baseline = f"fixed {opts.fixed_interval:g} s poller: {fmt(per_fixed)}"
    latencies = out.latencies()
    return [
        Figure(name, "IMS calls per succeeded item", out.calls / max(out.succeeded, 1), goal="<= 4", baseline=baseline),
        Figure(
            name,
            "calls saved against the fixed poller",
            per_fixed / (out.calls / max(out.succeeded, 1)),
            "x",
            baseline=baseline,
        ),
        Figure(
            name,
            "completion latency, median / D",
            measure.percentile(latencies, 50) / opts.long_copy_seconds,
            goal="<= 0.10",
        ),
    ]
