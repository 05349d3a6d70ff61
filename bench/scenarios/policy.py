"""A standing policy at size: a policy over a catalogue of N images (``--policy-images``, 10,000) while
``--policy-new-images`` (100) new ones arrive every interval, against the issue's goal: its lag stays under one
interval, at no more than 0.05 IMS calls per unchanged image per run.

Its first run copies the whole catalogue (the catch-up, measured too); new images arrive from its end on; the run
after it is not measured, then ``--policy-runs`` runs are, in steady state. The lag is each run's own figure (the age of
the oldest image it selected without a copy, at its start: ``GET /v1/policies/{id}/runs``), and, from the cloud's
side, the age of each new image when its copy was made. New images arrive through ``POST /_sim/images`` every
interval (the simulator's ``--new-images-every``, but stoppable): once they stop, one more run copies the last ones
and the run after it has nothing new: the IMS calls of that quiet run are what the unchanged images cost a run
(the listing, the copies' tag listing, the quota), with no copy's calls mixed in.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench import measure
from bench.options import GIB, BenchOptions
from bench.report import Figure
from bench.stack import BenchStack, bench_stack, write_catalog
from cli.processes import wait_until
from worker.domain.followups import PROVENANCE_POLICY, PROVENANCE_SOURCE
from worker.ims.client import ImsClient

SLOTS = 100  # IMS's copy jobs at once, and ours: the catch-up of the catalogue is copies, not what is measured


def run(opts: BenchOptions) -> list[Figure]:
    n, every = opts.policy_images, opts.policy_every
    workdir = opts.workdir / "policy"
    workdir.mkdir(parents=True, exist_ok=True)
    catalog = write_catalog(workdir / "catalog.json", [GIB] * n)
    simulator = {"catalog": catalog, "copy_seconds": opts.policy_copy_seconds, "job_limit": SLOTS}
    env = {
        "IMSREP_POLICY_MIN_INTERVAL": str(int(every)),
        "IMSREP_POLICY_TICK_SECONDS": "1",
        "IMSREP_ACCOUNTS__DEFAULT__SLOT_LIMIT": str(SLOTS),
        "IMSREP_ACCOUNTS__DEFAULT__REQUEST_RATE": "2000",
        "IMSREP_ACCOUNTS__DEFAULT__REQUEST_BURST": "500",
    }
    with bench_stack(workdir / "state", ["default"], simulator, env) as stack:
        body = {"name": "bench-policy", "selector": {}, "template": {"name": "{name}-c"}, "schedule": {"every": every}}
        created = stack.api.post("/v1/policies", json=body)
        created.raise_for_status()
        policy = Watched(stack, created.json()["policy_id"], timeout=every * 3 + 300)
        started = time.perf_counter()
        first = policy.wait_run(1, timeout=n / 2 + 300)
        catch_up = time.perf_counter() - started
        with Arrivals(stack, opts.policy_new_images, every):  # from the catch-up's end: steady state
            runs = [policy.next_run(first)]  # its first arrivals: not measured
            before = stack.stats()
            for _ in range(opts.policy_runs):
                runs.append(policy.next_run(runs[-1]))
            steady_calls = measure.calls_between(before, stack.stats(), stack.projects["default"])
        last = policy.next_run(runs[-1])  # copies the last arrivals
        before = stack.stats()
        quiet = policy.next_run(last)
        quiet_calls = measure.endpoint_calls_between(before, stack.stats(), [stack.projects["default"]])
        measured = runs[1:]
        ages = _copy_ages(stack, policy.policy_id, since=measure.epoch(measured[0]["started_at"]) - every)
    return _figures(opts, Measured(first, catch_up, measured, steady_calls, quiet, quiet_calls, ages))


class Arrivals:
    """``count`` new images every ``every`` seconds, from entering until leaving (a thread of its own)."""

    def __init__(self, stack: BenchStack, count: int, every: float) -> None:
        self.stack, self.count, self.every = stack, count, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._add, name="arrivals", daemon=True)

    def __enter__(self) -> Arrivals:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _add(self) -> None:
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self.stack.sim.post("/_sim/images", json={"count": self.count}).raise_for_status()
            due += self.every  # from the start, not from each answer: no drift


class Watched:
    """The policy's runs as its user sees them (``GET /v1/policies/{id}/runs``)."""

    def __init__(self, stack: BenchStack, policy_id: str, timeout: float) -> None:
        self.stack, self.policy_id, self.timeout = stack, policy_id, timeout

    def runs(self) -> list[dict[str, Any]]:
        return self.stack.api.get(f"/v1/policies/{self.policy_id}/runs").json()["runs"]

    def next_run(self, after: dict[str, Any]) -> dict[str, Any]:
        """The first run after ``after`` that starts a batch (skipped ones are passed over), once it has finished."""
        found: list[int] = []

        def started() -> bool:
            found[:] = [r["run"] for r in self.runs() if r["run"] > after["run"] and r["state"] != "skipped"]
            return bool(found)

        wait_until(started, self.timeout, f"a run after run {after['run']}", interval=0.25)
        return self.wait_run(min(found), self.timeout)

    def wait_run(self, number: int, timeout: float) -> dict[str, Any]:
        """Run ``number`` once its batch has finished."""
        found: dict[str, Any] = {}

        def finished() -> bool:
            found.update(next((r for r in self.runs() if r["run"] == number), {}))
            return found.get("state") == "finished"

        wait_until(finished, timeout, f"run {number} of policy {self.policy_id}", interval=0.25)
        return found


@dataclass(frozen=True)
class Measured:
    first: dict[str, Any]  # the catch-up run
    catch_up: float  # seconds from the policy's creation to its first run's end
    runs: list[dict[str, Any]]  # the steady runs measured
    steady_calls: int  # IMS calls over them
    quiet: dict[str, Any]  # a run with nothing new
    quiet_calls: dict[str, int]  # its IMS calls by endpoint
    ages: list[float]  # seconds from each new image's creation to its copy's


def _copy_ages(stack: BenchStack, policy_id: str, since: float) -> list[float]:
    """Seconds from each new image's creation to its copy's (by the policy), for the images made since ``since``."""
    with ImsClient(stack.account("default"), connect_timeout=5, read_timeout=60) as ims:
        images = list(ims.iter_images())
    created = {i.id: i.created_at.timestamp() for i in images if i.created_at is not None}
    ages = []
    for copy in images:
        source = copy.tag(PROVENANCE_SOURCE)
        if copy.tag(PROVENANCE_POLICY) != policy_id or source not in created or copy.created_at is None:
            continue
        if created[source] >= since:
            ages.append(copy.created_at.timestamp() - created[source])
    return ages


def _figures(opts: BenchOptions, m: Measured) -> list[Figure]:
    every = opts.policy_every
    name = f"policy: {opts.policy_images} images, {opts.policy_new_images} new every {every:g} s"
    lags = [r["lag_seconds"] for r in m.runs if r["lag_seconds"] is not None]
    unchanged = m.quiet["already_copied"]  # every source has its copy: all of them unchanged
    quiet_calls = sum(m.quiet_calls.values())
    quiet_note = ", ".join(f"{endpoint} {n}" for endpoint, n in m.quiet_calls.items())
    steady_unchanged = sum(r["already_copied"] for r in m.runs) / len(m.runs)
    made = sum(r["total"] for r in m.runs)
    return [
        Figure(name, "catch-up: first run's copies per second", m.first["total"] / m.catch_up, "/s",
               note=f"{m.first['total']} copies, {SLOTS} slots, D = {opts.policy_copy_seconds:g} s, from creation"),
        Figure(name, f"largest run lag / interval ({len(m.runs)} runs)", max(lags, default=math.nan) / every,
               goal="<= 1", note="each run's lag_seconds: its oldest selected image without a copy, at its start; "
               f"runs: {', '.join(f'{lag:.1f} s' for lag in lags)}"),
        Figure(name, "largest image-to-copy age / interval", max(m.ages, default=math.nan) / every,
               note=f"{len(m.ages)} new images, from their creation to their copy's (its copy call)"),
        Figure(name, "IMS calls per unchanged image per run", quiet_calls / max(unchanged, 1), goal="<= 0.05",
               note=f"a run with nothing new ({m.quiet['total']} items), {unchanged:,} sources copied before: "
               f"{quiet_note}"),
        Figure(name, "IMS calls per unchanged image per run, new images' copies included",
               m.steady_calls / len(m.runs) / max(steady_unchanged, 1),
               note=f"{made} copies over the {len(m.runs)} steady runs"),
    ]  # fmt: skip
