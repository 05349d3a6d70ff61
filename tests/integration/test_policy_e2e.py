"""Issue 29's end-to-end test of a standing policy, on real processes (Redis, the simulator, the API, a worker, beat):
a policy every EVERY seconds over a simulator that adds an image every NEW_EVERY seconds (``--new-images-every``),
for RUNS runs, with a worker SIGKILL, an API restart and a Redis flush between runs. Read from the simulator's own
records at the end: every new matching image has exactly one copy (0 duplicates, 0 missing, no copy of a copy),
each carrying its provenance tags, and each image was copied by the first run that started after it appeared, so
its lag (the image's creation to its copy's) stays under one interval plus the copy time.

The lag is checked by that order of events rather than by a number of seconds: the suite runs on busy machines,
and a run delayed by a restart delays its images' copies without being wrong (``bench/`` measures lag in seconds).
Its own stack, since it kills, restarts and wipes parts of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from cli import services
from cli.demo import simulator_account
from cli.processes import wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackOptions
from tests.integration.conftest import SIMULATOR, forget_all_but_policy, policy_env
from worker.domain.followups import PROVENANCE_POLICY, PROVENANCE_SOURCE
from worker.ims.client import ImsClient

EVERY = 2  # seconds between a policy's runs
NEW_EVERY = 1.0  # seconds between the simulator's new images: two or so per run
RUNS = 20
# Between these runs (after the run of that number has finished): the faults the issue names.
KILL_WORKER, RESTART_API, FLUSH_REDIS = 5, 10, 15


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("policy-e2e"),
        use_simulator=True,
        simulator={**SIMULATOR, "new_images_every": NEW_EVERY, "new_images_count": 1},
        simulator_project_ids=services.EXAMPLE_PROJECTS,
        env=policy_env(EVERY, 0.25),
        flower=False,
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options) as stack:  # stops every process on the way out, whatever happened
        stack.start()
        yield stack


@dataclass
class RunSeen:
    """A run as the API showed it before Redis forgot it: when it started and when its batch finished."""

    started: float
    finished: float


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_policy_copies_each_new_image_once_and_in_time_through_faults(local: LocalStack) -> None:
    info = local.info
    headers = {"Authorization": f"Bearer {info.api_token}"}
    no_keepalive = httpx.Limits(max_keepalive_connections=0)  # the API restarts: no connection outlives it
    with (
        httpx.Client(base_url=info.api_url, headers=headers, timeout=30, limits=no_keepalive) as api,
        httpx.Client(base_url=info.simulator_url, timeout=30) as sim,
        ImsClient(simulator_account(info), connect_timeout=5, read_timeout=30) as ims,
    ):
        # Images created from this second on are the policy's to copy (IMS's created_at has whole seconds).
        since = datetime.now(timezone.utc).replace(microsecond=0)
        body = {
            "name": "e2e-policy",
            "selector": {"created_after": since.isoformat()},  # its copies match as well: they must not be copied
            "template": {"name": "{name}-copy"},
            "schedule": {"every": EVERY},
            "overlap": "wait",  # a due run starts when the one before ends: none is skipped
            # Retention (issue 29): the policy's retention rule goes here once that branch is merged.
        }
        created = api.post("/v1/policies", json=body)
        assert created.status_code == 201, created.text
        policy_id = created.json()["policy_id"]
        seen: dict[int, RunSeen] = {}

        def runs() -> list[dict[str, Any]]:
            """The runs the API shows; every finished one's times are recorded on the way."""
            shown = api.get(f"/v1/policies/{policy_id}/runs").json()["runs"]
            for r in shown:
                if r["state"] == "finished" and r["run"] not in seen:
                    batch = api.get(f"/v1/batches/{r['batch_id']}").json()
                    seen[r["run"]] = RunSeen(_epoch(r["started_at"]), _epoch(batch["finished_at"]))
            return shown

        def pause(paused: bool) -> None:
            answer = api.post(f"/v1/policies/{policy_id}/{'pause' if paused else 'resume'}")
            assert answer.status_code == 200, answer.text

        for run in range(1, RUNS + 1):
            wait_until(lambda run=run: runs() and run in seen, 60, f"run {run} of the policy to finish", interval=0.1)
            if run == KILL_WORKER:
                local.kill("worker")  # whatever the next run had begun is the restarted worker's (or beat's) to redo
                local.restart("worker")
            elif run == RESTART_API:
                local.stop_service("api")
                local.restart("api")
            elif run == FLUSH_REDIS:
                # Paused, so that no run is under way: a flush mid-run would lose that run's items, and their
                # images would wait a run longer. The policy keeps its own keys; every batch, item, run record and
                # idempotency key goes (test_policies.py does the same).
                pause(True)
                wait_until(lambda: all(r["state"] != "running" for r in runs()), 60, "the run under way")
                forget_all_but_policy(info, policy_id)
                pause(False)

        jobs = sim.get("/_sim/jobs", params={"project_id": info.simulator_project_id}).json()["jobs"]
        listed = list(ims.iter_images())
    _check(since.timestamp(), seen, jobs, listed, policy_id)


def _check(since: float, seen: dict[int, RunSeen], jobs: list[dict[str, Any]], listed: list, policy_id: str) -> None:
    """Exactly one copy per new image, made by the first run that started after the image appeared."""
    created = {i.id: i.created_at.timestamp() for i in listed if i.copied_from is None and i.created_at is not None}
    new = {image_id: at for image_id, at in created.items() if at >= since}
    copies = Counter(job["source_image_id"] for job in jobs)
    assert not [s for s, n in copies.items() if n > 1], "duplicates"
    assert set(copies) <= set(new), "a copy of something else than a new image (a copy of a copy?)"
    by_source = {job["source_image_id"]: job for job in jobs}
    starts = sorted(run.started for run in seen.values())
    # An image listed at a whole second appeared within the second after it: the first run that started after
    # that second had it in its listing.
    due = {image_id: next((s for s in starts if s > at + 1), None) for image_id, at in new.items()}
    missing = [image_id for image_id, start in due.items() if start is not None and image_id not in by_source]
    assert not missing, f"new images no run copied: {missing}"
    finished_by_start = {run.started: run.finished for run in seen.values()}
    late = {
        image_id: (by_source[image_id]["begin"] - new[image_id], finished_by_start[start] - new[image_id])
        for image_id, start in due.items()
        if start is not None and by_source[image_id]["begin"] > finished_by_start[start]
    }
    assert not late, f"copied after the first run that started after them ended (lag, its bound): {late}"
    # The lags in seconds, for the record (whole-second creation times: up to a second too long); "on time": images
    # whose next run came within an interval, i.e. not held up by a fault.
    lags = {i: by_source[i]["begin"] - new[i] for i, start in due.items() if start is not None}
    on_time = [lags[i] for i, start in due.items() if start is not None and start - new[i] <= EVERY + 1]
    worst, worst_on_time = max(lags.values()), max(on_time)
    print(f"\n{len(lags)} new images copied once each; lag max {worst:.1f}s, on time max {worst_on_time:.1f}s")
    # Every copy carries its provenance, as later runs read it.
    tagged = {image.id: image for image in listed if image.tag(PROVENANCE_POLICY) == policy_id}
    assert {image.tag(PROVENANCE_SOURCE) for image in tagged.values()} == set(copies)
    assert {image.copied_from for image in tagged.values()} == set(copies)
    # Retention (issue 29: "keeps exactly N per lineage, deletes nothing it did not make"): assert it here once the
    # retention branch is merged, from the same listing (the policy's copies per lineage, nothing else deleted).
