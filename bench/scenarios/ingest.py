"""Goals 4 and 6: a 10,000-item POST against a loop of 10,000 ``apply_async`` calls on the same Redis; the items'
flow into the pipeline while other copies run; Redis memory per stored item; worker CPU; API and worker RSS
after one, two and three such batches (flat: not growing with history)."""

from __future__ import annotations

import time
import uuid

import celery

from bench import measure
from bench.options import GIB, SLOT_LIMIT, BenchOptions
from bench.report import Figure, fmt
from bench.stack import BenchStack, bench_stack, write_catalog
from cli.processes import wait_until
from config.celery import celery_config
from config.settings import Settings

FLOW = "flow"  # the account whose copies are already running when the big batch arrives
BASELINE_QUEUE = "bench-apply-async"  # nobody consumes it; purged after the loop


def publish_loop(settings: Settings, count: int) -> float:
    """Seconds a plain loop takes to publish ``count`` task messages with ``apply_async`` (to the services' Redis)."""
    app = celery.Celery("bench", set_as_current=False)
    app.conf.update(celery_config(settings))

    @app.task(name="bench.noop")
    def noop(item_id: str, image_id: str) -> None:  # never run
        del item_id, image_id

    started = time.perf_counter()
    for _ in range(count):
        noop.apply_async(kwargs={"item_id": uuid.uuid4().hex, "image_id": str(uuid.uuid4())}, queue=BASELINE_QUEUE)
    took = time.perf_counter() - started
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(BASELINE_QUEUE)
    app.close()
    return took


def drained(stack: BenchStack) -> bool:
    return all(stack.data.telemetry.queue_backlog(q) == 0 for q in ("admit", "validate", "submit", "poll"))


def ingest_round(stack: BenchStack, ids: list[str]) -> tuple[str, float, float, int]:
    """POST the batch; returns its ID, seconds to 202, seconds until every item is validated, and the IMS calls
    its project took meanwhile."""
    before = stack.stats()
    started = time.perf_counter()
    accepted, to_202 = stack.submit([{"image_id": i} for i in ids])
    stack.wait_batch(accepted["batch_id"], 600, done="validated")
    validated = time.perf_counter() - started
    calls = measure.calls_between(before, stack.stats(), stack.projects["default"])
    return accepted["batch_id"], to_202, validated, calls


def cancel_and_settle(stack: BenchStack, batch_id: str, d: float) -> None:
    """Cancel what has not reached IMS; the few running copies finish; queues drain."""
    stack.api.post(f"/v1/batches/{batch_id}/cancel").raise_for_status()
    stack.wait_batch(batch_id, d * 4 + 120)
    wait_until(lambda: drained(stack), 60, "the queues to drain", interval=0.25)


def run(opts: BenchOptions) -> list[Figure]:
    n, d = opts.ingest_items, opts.copy_seconds
    workdir = opts.workdir / "ingest"
    workdir.mkdir(parents=True, exist_ok=True)
    catalog = write_catalog(workdir / "catalog.json", [2 * GIB] * max(n, opts.flow_items))
    with bench_stack(workdir / "state", ["default", FLOW], {"copy_seconds": d, "catalog": catalog}) as stack:
        ids = stack.image_ids("default")[:n]
        flow_ids = stack.image_ids(FLOW)[: opts.flow_items]
        loop = publish_loop(stack.local.service_settings(), n)
        mem0, api0, worker0 = stack.data.memory_used(), stack.rss_mib("api"), stack.rss_mib("worker")

        flow, _ = stack.submit([{"image_id": i, "account": FLOW} for i in flow_ids])
        wait_until(lambda: stack.batch(flow["batch_id"])["counts"]["replicating"] > 0, 60, "the running copies")
        cpu0, flood_start = stack.cpu_seconds("worker"), time.time()
        batch_id, to_202, validated, calls = ingest_round(stack, ids)
        flood_end, cpu = time.time(), stack.cpu_seconds("worker") - cpu0
        stack.wait_batch(flow["batch_id"], opts.flow_items * d * 3 / SLOT_LIMIT + 120)
        flow_jobs = [
            j
            for j in stack.jobs()
            if j["project_id"] == stack.projects[FLOW] and flood_start <= j["end"] and j["end"] <= flood_end
        ]
        flood_latencies = measure.completion_latencies(flow_jobs, stack.items(flow["batch_id"]))
        cancel_and_settle(stack, batch_id, d)
        mem1, api1, worker1 = stack.data.memory_used(), stack.rss_mib("api"), stack.rss_mib("worker")

        batch2, to_202_2, _, _ = ingest_round(stack, ids)
        cancel_and_settle(stack, batch2, d)
        api2, worker2 = stack.rss_mib("api"), stack.rss_mib("worker")
        batch3, _, _, _ = ingest_round(stack, ids)
        cancel_and_settle(stack, batch3, d)
        api3, worker3 = stack.rss_mib("api"), stack.rss_mib("worker")

    name = f"ingest: {n:,} items in one POST"
    loop_text = f"apply_async loop: {fmt(loop, 's')}"
    return [
        Figure(name, "time to 202", to_202, "s", baseline=loop_text),
        Figure(name, "time to 202 / apply_async loop", to_202 / loop, goal="<= 0.5", baseline=loop_text),
        Figure(name, "time to 202, second batch", to_202_2, "s", baseline=loop_text),
        Figure(name, "POST to every item validated", validated, "s"),
        Figure(
            name,
            "IMS calls to validate, per item",
            calls / n,
            goal="<= 0.1",
            note="listing pages (500 images each) answer many items; per-image look-ups would be 1.0",
        ),
        Figure(
            name,
            f"running copies' completion latency during the flood, median / D ({len(flood_latencies)} jobs)",
            measure.percentile(flood_latencies, 50) / d,
            goal="<= 0.10",
        ),
        Figure(
            name,
            "running copies' completion latency during the flood, p95 / D",
            measure.percentile(flood_latencies, 95) / d,
            goal="<= 0.25",
        ),
        Figure(
            name,
            "Redis memory per stored item (after its verdict, history kept)",
            (mem1 - mem0) / n,
            "B",
            goal="<= 2048",
        ),
        Figure(name, "worker CPU per ingested item (admit + validate, running copies included)", cpu / n * 1000, "ms"),
        *_rss_figures(name, "API", [api0, api1, api2, api3]),
        *_rss_figures(name, "worker", [worker0, worker1, worker2, worker3]),
    ]


def _rss_figures(name: str, service: str, rss: list[float]) -> list[Figure]:
    """RSS before any batch and after each; flat means the last batch added (next to) nothing."""
    history = " / ".join(fmt(value, "MiB") for value in rss)
    return [
        Figure(name, f"{service} RSS before / after batch 1 / 2 / 3", rss[-1], "MiB", baseline=history),
        Figure(name, f"{service} RSS growth over batch 3", rss[-1] - rss[-2], "MiB", goal="<= 10"),
    ]
