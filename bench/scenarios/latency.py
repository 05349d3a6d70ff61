"""A cloud 150-300 ms away (issue 26): the ``accounts`` workload at its largest (200 projects x 10 items, two copies
per slot, D = 60 s: 1,000 concurrent copies) with every simulator request answered after ``--latencies`` seconds,
and the 10,000-item ingest's time until every item is validated at 0 and 150 ms.

Every latency's run is measured in the same sitting as the zero-latency one it is compared with: utilisation, IMS
calls per item, the worker's CPU per item and its memory (RSS of every worker process, pool children included,
after the run), each as a ratio to the zero-latency run's.
"""

from __future__ import annotations

from typing import Any

from bench import machine, measure
from bench.options import GIB, SLOT_LIMIT, BenchOptions
from bench.replication import Outcome, replicate
from bench.report import Figure
from bench.scenarios.ingest import ingest_round
from bench.stack import bench_stack, write_catalog


def run(opts: BenchOptions) -> list[Figure]:
    latencies = [float(x) for x in opts.latencies.split(",")]
    count, d, per_project = opts.latency_accounts, opts.scale_copy_seconds, 2 * SLOT_LIMIT
    accounts = [f"a{i:03d}" for i in range(count)]
    figures: list[Figure] = []
    base: dict[str, float] = {}
    for latency in latencies:
        workdir = opts.workdir / f"latency-{latency:g}"
        workdir.mkdir(parents=True, exist_ok=True)
        catalog = write_catalog(workdir / "catalog.json", [2 * GIB] * per_project)
        sim = {"copy_seconds": d, "catalog": catalog, "latency": latency}
        with bench_stack(workdir / "state", accounts, sim) as stack:
            out = replicate(stack, accounts, per_project, timeout=8 * d + 900, naive_items=0, naive_poll=1.0)
            rss = stack.rss_mib("worker")
        gaps = out.handoff_gaps(SLOT_LIMIT)
        name = f"latency: {latency * 1000:g} ms, {count} projects x {per_project} items, D = {d:g} s"
        seen = {
            "utilisation": measure.utilisation(out.jobs, SLOT_LIMIT * count),
            "cpu": out.worker_cpu / max(len(out.items), 1) * 1000,
            "rss": rss,
        }
        base = base or seen
        goal = {0.15: ">= 0.95", 0.3: ">= 0.93"}.get(latency, "")
        figures += [
            Figure(name, "slot utilisation", seen["utilisation"], goal=goal),
            Figure(name, "makespan", out.makespan, "s", note=f"ideal: {2 * d:g} s"),
            # Where a shortfall comes from: the first wave (every slot's first copy begun) or the hand-offs.
            Figure(name, "first wave: first to last first copy begun", _first_wave(out.jobs, count), "s"),
            Figure(name, "slot hand-off, median", measure.percentile(gaps, 50), "s"),
            Figure(name, "slot hand-off, p95", measure.percentile(gaps, 95), "s"),
            Figure(name, "IMS calls per item", out.calls / max(out.succeeded, 1), goal="<= 3.5", note=_calls(out)),
            Figure(name, "worker CPU per item", seen["cpu"], "ms"),
            Figure(name, "worker RSS after the run", rss, "MiB"),
            Figure(name, "succeeded", out.succeeded, goal=f">= {len(out.items)}"),
            machine.figure(name, out.reference),
        ]
        if seen is not base:
            figures += [
                Figure(name, "CPU per item / zero latency's", seen["cpu"] / base["cpu"], "x", goal="<= 1.2"),
                Figure(name, "worker RSS / zero latency's", seen["rss"] / base["rss"], "x", goal="<= 1.5"),
            ]
    return figures + _validation(opts)


def _calls(out: Outcome) -> str:
    return measure.per_item(out.endpoints, out.succeeded)


def _first_wave(jobs: list[dict[str, Any]], projects: int) -> float:
    begins = sorted(job["begin"] for job in jobs)
    return begins[min(len(begins), SLOT_LIMIT * projects) - 1] - begins[0] if begins else 0.0


def _validation(opts: BenchOptions) -> list[Figure]:
    """Seconds until every item of a 10,000-item batch is validated, at no latency and at 150 ms."""
    n = opts.ingest_items
    took: dict[float, float] = {}
    for latency in (0.0, 0.15):
        workdir = opts.workdir / f"latency-ingest-{latency:g}"
        workdir.mkdir(parents=True, exist_ok=True)
        catalog = write_catalog(workdir / "catalog.json", [2 * GIB] * n)
        sim = {"copy_seconds": 600.0, "catalog": catalog, "latency": latency}
        with bench_stack(workdir / "state", ["default"], sim) as stack:
            _, _, took[latency], _ = ingest_round(stack, stack.image_ids("default")[:n])
    name = f"latency: {n:,} items validated"
    return [
        Figure(name, "seconds until validated, no latency", took[0.0], "s"),
        Figure(name, "seconds until validated, 150 ms", took[0.15], "s"),
        Figure(name, "150 ms / no latency", took[0.15] / took[0.0], "x", goal="<= 2"),
    ]
