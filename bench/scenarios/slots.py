"""Goals 1, 2 and 5 in one project: slot utilisation, completion latency, slot hand-off and the speed-up over
the sequential script, for copies of a fixed length D (``slots``) and of a length proportional to size (``mix``)."""

from __future__ import annotations

from bench import machine, measure
from bench.options import GIB, SLOT_LIMIT, BenchOptions
from bench.replication import NAIVE, Outcome, replicate
from bench.report import Figure, fmt
from bench.stack import bench_stack, write_catalog


def run_uniform(opts: BenchOptions) -> list[Figure]:
    name = f"slots: 1 project, {opts.items} items, D = {opts.copy_seconds:g} s"
    sizes = [2 * GIB] * max(opts.items, opts.naive_items)
    return _run(opts, "slots", name, sizes, {"copy_seconds": opts.copy_seconds}, opts.copy_seconds)


def run_mix(opts: BenchOptions) -> list[Figure]:
    # Sizes 1..8 GiB in turn: jobs of base + per_gb x size seconds.
    sizes = [(1 + i % 8) * GIB for i in range(max(opts.items, opts.naive_items))]
    durations = [opts.mix_base_seconds + opts.mix_seconds_per_gb * s / GIB for s in sizes[: opts.items]]
    mean = sum(durations) / len(durations)
    name = f"mix: 1 project, {opts.items} items, D = {opts.mix_base_seconds:g} s + {opts.mix_seconds_per_gb:g} s/GiB"
    simulator = {"copy_seconds": opts.mix_base_seconds, "copy_seconds_per_gb": opts.mix_seconds_per_gb}
    return _run(opts, "mix", name, sizes, simulator, mean)


def _run(opts: BenchOptions, key: str, name: str, sizes: list[int], simulator: dict, d: float) -> list[Figure]:
    workdir = opts.workdir / key
    workdir.mkdir(parents=True, exist_ok=True)
    catalog = write_catalog(workdir / "catalog.json", sizes)
    with bench_stack(workdir / "state", ["default", NAIVE], {**simulator, "catalog": catalog}) as stack:
        out = replicate(
            stack,
            ["default"],
            opts.items,
            timeout=opts.items * d * 3 / SLOT_LIMIT + 120,
            naive_items=opts.naive_items,
            naive_poll=opts.naive_poll,
        )
    return replication_figures(name, out, d, ">= 0.95")


# The services share the machine's cores: what a crowded round of hand-offs costs (docs/performance.md).
SHARED = 'worker, Redis, simulator, API, Flower and beat together: the c of "What bounds many projects"'


def replication_figures(name: str, out: Outcome, d: float, utilisation_goal: str) -> list[Figure]:
    """The figures every replication scenario reports, relative to D (the mean job length)."""
    latencies = out.latencies()
    gaps = out.handoff_gaps(SLOT_LIMIT)
    naive = out.naive
    naive_makespan = naive.per_item * len(out.items) if naive else float("nan")
    naive_text = (
        f"sequential: {fmt(naive_makespan, 's')} ({fmt(naive.per_item, 's')}/item x {len(out.items)}, "
        f"from {naive.items} items run)"
        if naive
        else ""
    )
    figures = [
        Figure(
            name,
            "slot utilisation",
            measure.utilisation(out.jobs, SLOT_LIMIT * len(out.projects)),
            goal=utilisation_goal,
            note=measure.idle_note(out.jobs, SLOT_LIMIT),
        ),
        Figure(name, "completion latency, median / D", measure.percentile(latencies, 50) / d, goal="<= 0.10"),
        Figure(name, "completion latency, p95 / D", measure.percentile(latencies, 95) / d, goal="<= 0.25"),
    ]
    figures += [
        Figure(
            name, "slot hand-off (job end to next copy), median / D", measure.percentile(gaps, 50) / d, goal="<= 0.10"
        ),
        Figure(name, "slot hand-off, p95 / D", measure.percentile(gaps, 95) / d, goal="<= 0.25"),
        Figure(name, "makespan (POST to last verdict)", out.makespan, "s", baseline=naive_text),
        Figure(name, "speed-up over the sequential script", naive_makespan / out.makespan, "x", baseline=naive_text),
        Figure(name, "IMS calls per succeeded item", out.calls / max(out.succeeded, 1)),
        Figure(name, "worker CPU per item", out.worker_cpu / max(len(out.items), 1) * 1000, "ms"),
        Figure(name, "CPU per item, every service", out.stack_cpu / max(len(out.items), 1) * 1000, "ms", note=SHARED),
        machine.figure(name, out.reference),
    ]
    return figures
