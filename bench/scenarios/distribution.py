"""Issue 30's goal: a distribution to 100 receiving projects keeps every source and receiver slot busy.

``--distribution-images`` golden images (10: two per slot, as the other scenarios give each slot two copies), each
distributed to ``--distribution-receivers`` projects (100): the source's copies fill its 5 slots twice, and each
receiver, accepting the shares as they come, fills its 5 slots twice (a slot's second image waits in its line while
the first copies). Utilisation is the other scenarios' (busy slot-seconds over the slots' seconds, from the
simulator's copy jobs), over the receivers' copy phase: the first receiver copy's start to the last one's end, with
every receiver's slots counted (``SLOT_LIMIT`` x receivers).
"""

from __future__ import annotations

import time

from bench import measure
from bench.options import GIB, SLOT_LIMIT, BenchOptions
from bench.report import Figure, fmt
from bench.stack import bench_stack, project_id, write_catalog
from simulator.jobs import JOB_TYPE

# The last receiver's end wakes its parent (docs/architecture.md "A distribution"); it used to wait for the parent's
# next look.
VERDICT_NOTE = "the last receiver item to end wakes its parent; before, the parents' look every poll_max_interval"


def run(opts: BenchOptions) -> list[Figure]:
    workdir = opts.workdir / "distribution"
    workdir.mkdir(parents=True, exist_ok=True)
    d, count, images = opts.scale_copy_seconds, opts.distribution_receivers, opts.distribution_images
    receivers = [f"r{i:03d}" for i in range(count)]
    catalog = write_catalog(workdir / "catalog.json", [2 * GIB] * images)
    # The source account may share with every receiver (its share_projects guardrail).
    env = {"IMSREP_ACCOUNTS__DEFAULT__SHARE_PROJECTS": ",".join(project_id(r) for r in receivers)}
    with bench_stack(workdir / "state", receivers, {"copy_seconds": d, "catalog": catalog}, env) as stack:
        distribute = [{"account": r} for r in receivers]
        items = [{"image_id": i, "distribute": distribute} for i in stack.image_ids("default")]
        before, cpu = stack.stats(), stack.cpu_seconds("worker")
        started = time.monotonic()
        accepted, _ = stack.submit(items)
        stack.wait_batch(accepted["batch_id"], timeout=3 * d * images / SLOT_LIMIT + 600)
        makespan, done_at = time.monotonic() - started, time.time()
        cpu = stack.cpu_seconds("worker") - cpu
        after = stack.stats()
        copies = [job for job in stack.jobs() if job["job_type"] == JOB_TYPE]
        results = stack.items(accepted["batch_id"])
    source = [job for job in copies if job["project_id"] == stack.projects["default"]]
    received = [job for job in copies if job["project_id"] != stack.projects["default"]]
    begins = sorted(job["begin"] for job in received) or [float("nan")]
    lag = begins[0] - min((job["end"] for job in source), default=float("nan"))
    last_end = max((job["end"] for job in received), default=float("nan"))
    succeeded = sum(1 for item in results if item["parent_id"] and item["state"] == "succeeded")
    endpoints = measure.endpoint_calls_between(before, after, list(stack.projects.values()))
    calls = sum(endpoints.values())
    # Ideal: the source's first copies (D), then the receivers' (their copies, two per slot), which overlap the rest.
    slots, ideal = SLOT_LIMIT * count, d * (1 + images / SLOT_LIMIT)
    receiver_use = measure.utilisation(received, slots)
    source_use = measure.utilisation(source, SLOT_LIMIT)
    filled = begins[min(slots, len(begins)) - 1] - begins[0]
    idle = measure.idle_note(received, SLOT_LIMIT)
    name = f"distribution: {images} images to {count} projects each, D = {d:g} s ({slots} slots)"
    return [
        Figure(name, "receiver slot utilisation (their copy phase)", receiver_use, goal=">= 0.9", note=idle),
        Figure(name, "source slot utilisation (its copy phase)", source_use, goal=">= 0.9"),
        Figure(name, "first source copy's end to the first receiver copy", lag, "s"),
        Figure(name, "first receiver copy to every receiver slot busy", filled, "s"),
        Figure(name, "receiver copies succeeded", succeeded, goal=f">= {images * count}"),
        Figure(name, "makespan (POST to last verdict)", makespan, "s", baseline=f"ideal: {fmt(ideal, 's')}"),
        Figure(name, "last receiver copy's end to the batch's end", done_at - last_end, "s", note=VERDICT_NOTE),
        Figure(
            name,
            "IMS calls per receiver copy (every project's)",
            calls / max(succeeded, 1),
            note=measure.per_item(endpoints, succeeded),
        ),
        Figure(name, "worker CPU per item", cpu / max(len(results), 1) * 1000, "ms"),
    ]
