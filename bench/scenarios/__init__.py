"""The benchmark scenarios; each starts its own stack, runs, and returns its figures."""

from __future__ import annotations

from collections.abc import Callable

from bench.options import BenchOptions
from bench.report import Figure
from bench.scenarios import (
    accounts,
    calls,
    campaigns,
    distribution,
    fairness,
    ingest,
    latency,
    policy,
    projects,
    slots,
)

Scenario = Callable[[BenchOptions], list[Figure]]

SCENARIOS: dict[str, Scenario] = {
    "slots": slots.run_uniform,
    "mix": slots.run_mix,
    "projects": projects.run,
    "calls": calls.run,
    "ingest": ingest.run,
    "campaigns": campaigns.run,
    "fairness": fairness.run,
    "accounts": accounts.run,
    "latency": latency.run,
    "policy": policy.run,
    "distribution": distribution.run,
}
