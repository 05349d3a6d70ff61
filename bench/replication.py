"""One measured replication run: a batch through the system, the naive script beside it on a project of its own,
and what the simulator and the processes recorded meanwhile."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench import machine, measure
from bench.naive import NaiveRun, sequential
from bench.stack import BenchStack

NAIVE = "naive"  # the account whose project the sequential script uses


@dataclass
class Outcome:
    jobs: list[dict[str, Any]]  # the system's IMS jobs
    items: list[dict[str, Any]]
    makespan: float  # seconds from the POST to the last item's verdict
    calls: int  # IMS calls of the system's projects, 429s included
    endpoints: dict[str, int]  # those calls by endpoint
    worker_cpu: float  # CPU seconds of the worker processes
    stack_cpu: float  # CPU seconds of every service of the stack, the worker's included
    reference: float  # the machine's speed meanwhile: ``machine.reference_ms``'s median (lower: faster)
    naive: NaiveRun | None
    projects: dict[str, str]  # account -> project ID

    @property
    def succeeded(self) -> int:
        return sum(1 for item in self.items if item["state"] == "succeeded")

    def latencies(self) -> list[float]:
        return measure.completion_latencies(self.jobs, self.items)

    def handoff_gaps(self, slots: int) -> list[float]:
        """Slot hand-off gaps, project by project."""
        gaps: list[float] = []
        for project in self.projects.values():
            gaps += measure.handoff_gaps([job for job in self.jobs if job["project_id"] == project], slots)
        return gaps


def interleaved(stack: BenchStack, accounts: list[str], per_account: int) -> list[dict[str, Any]]:
    """``per_account`` items of each account, the accounts taking turns (as a mixed manifest would)."""
    ids = {account: stack.image_ids(account)[:per_account] for account in accounts}
    return [{"image_id": ids[a][i], "account": a} for i in range(per_account) for a in accounts]


def replicate(
    stack: BenchStack, accounts: list[str], per_account: int, *, timeout: float, naive_items: int, naive_poll: float
) -> Outcome:
    items = interleaved(stack, accounts, per_account)
    naive_ids = stack.image_ids(NAIVE)[:naive_items] if naive_items else []
    stop = threading.Event()
    before, cpu, every = stack.stats(), stack.cpu_seconds("worker"), stack.stack_cpu_seconds()
    with ThreadPoolExecutor(1) as pool, machine.SpeedProbe() as speed:
        naive = pool.submit(sequential, stack.account(NAIVE), naive_ids, naive_poll, stop) if naive_ids else None
        started = time.monotonic()
        accepted, _ = stack.submit(items)
        try:
            stack.wait_batch(accepted["batch_id"], timeout)
        finally:
            stop.set()  # the naive sample never outlives the system's run by much
        makespan = time.monotonic() - started
        cpu = stack.cpu_seconds("worker") - cpu
        every = stack.stack_cpu_seconds() - every
        after = stack.stats()
        naive_run = naive.result() if naive else None
    projects = {a: stack.projects[a] for a in accounts}
    return Outcome(
        jobs=[job for job in stack.jobs() if job["project_id"] in projects.values()],
        items=stack.items(accepted["batch_id"]),
        makespan=makespan,
        calls=sum(measure.calls_between(before, after, stack.projects[a]) for a in accounts),
        endpoints=measure.endpoint_calls_between(before, after, [stack.projects[a] for a in accounts]),
        worker_cpu=cpu,
        stack_cpu=every,
        reference=speed.median(),
        naive=naive_run,
        projects=projects,
    )
