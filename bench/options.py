"""What a benchmark run is asked to do: sizes and durations, settable from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
SLOT_LIMIT = 5  # IMS's concurrent copy jobs per project (the simulator's default --job-limit)


@dataclass(frozen=True)
class BenchOptions:
    workdir: Path
    items: int = 200  # one project (slots, mix)
    projects: int = 20  # many projects ...
    project_items: int = 50  # ... with this many items each
    copy_seconds: float = 2.0  # D: every copy job's length (slots, projects, ingest)
    mix_base_seconds: float = 1.0  # mix: a job lasts base + per_gb x size, sizes 1..8 GiB
    mix_seconds_per_gb: float = 0.5
    long_copy_seconds: float = 60.0  # calls: the long-copy scenario
    long_items: int = 15
    fixed_interval: float = 10.0  # calls: the fixed poller's interval
    ingest_items: int = 10_000
    flow_items: int = 50  # ingest: items already replicating when the big batch arrives
    naive_items: int = 20  # sequential baseline: items actually run (its makespan is per item x N)
    naive_poll: float = 1.0  # sequential baseline: seconds between job polls
    campaign_images: int = 10_000  # campaigns: the catalogue, the plan's items
    campaign_copy_seconds: float = 600.0  # campaigns: copies outlast the run (listing and judging are measured)
    fair_small_items: int = 5  # fairness: the batch submitted behind ...
    fair_large_items: int = 1000  # ... a large one, in the same account
    account_counts: str = "1,20,100,200"  # accounts: one run per number of projects
    scale_copy_seconds: float = 60.0  # accounts: D of those runs
    latencies: str = "0,0.15,0.3"  # latency: seconds the simulator waits before each answer, one run each (0 first)
    distribution_images: int = 10  # distribution: golden images, two per slot (D = scale_copy_seconds) ...
    distribution_receivers: int = 100  # ... each distributed to this many receiving projects
    latency_accounts: int = 200  # latency: projects (two copies per slot, D = scale_copy_seconds)
    policy_images: int = 10_000  # policy: the catalogue its selector covers (copied by its first run)
    policy_new_images: int = 100  # policy: images the simulator adds every interval
    policy_every: float = 30.0  # policy: its interval (seconds)
    policy_runs: int = 5  # policy: steady runs measured
    policy_copy_seconds: float = 1.0  # policy: D of its copies
