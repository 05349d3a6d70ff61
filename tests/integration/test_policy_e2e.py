"""Issue 29's end-to-end test of a standing policy, on real processes (Redis, the simulator, the API, a worker, beat):
a policy every EVERY seconds over a simulator that adds an image every NEW_EVERY seconds (``--new-images-every``),
for RUNS runs, with a worker SIGKILL, an API restart and a Redis flush between runs. Read from the simulator's own
records at the end: every new matching image has exactly one copy (0 duplicates, 0 missing, no copy of a copy),
each carrying its provenance tags, and each image was copied by the first run that started after it appeared, so
its lag (the image's creation to its copy's) stays under one interval plus the copy time. Its retention rule keeps
each lineage's newest copy and deletes the older ones, and nothing else.

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
from worker.ims.models import Image

EVERY = 2  # seconds between a policy's runs
NEW_EVERY = 1.0  # seconds between the simulator's new images: two or so per run
RUNS = 20
KEEP_LAST = 1  # copies a lineage keeps
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
            # Each lineage keeps its newest copy (by its source's creation), the rest deleted: the simulator's new
            # images continue lineages ("golden-web-v7" after "-v6"), so older versions' copies are retired.
            "retention": {"keep_last": KEEP_LAST, "action": "delete"},
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

        # Paused, and no run under way: the copies are final but for the last run's retention.
        pause(True)
        wait_until(lambda: all(r["state"] != "running" for r in runs()), 60, "the last run")

        def final() -> tuple[list[dict[str, Any]], list[Image]]:
            jobs = sim.get("/_sim/jobs", params={"project_id": info.simulator_project_id}).json()["jobs"]
            return jobs, list(ims.iter_images())

        last_start = seen[max(seen)].started
        wait_until(lambda: not _left_to_retire(*final(), last_start), 60, "the last run's retention")
        jobs, listed = final()
    _check(since.timestamp(), seen, jobs, listed, policy_id)
    _check_retention(jobs, listed, last_start)


def _check(since: float, seen: dict[int, RunSeen], jobs: list[dict[str, Any]], listed: list, policy_id: str) -> None:
    """Exactly one copy per new image, made by the first run that started after the image appeared, unless by then
    a newer version of its lineage had appeared: retention would delete its copy at once, so no run makes it."""
    sources = {i.id: i for i in listed if i.copied_from is None and i.created_at is not None}
    new = {i: image.created_at.timestamp() for i, image in sources.items() if image.created_at.timestamp() >= since}
    copies = Counter(job["source_image_id"] for job in jobs)
    assert not [s for s, n in copies.items() if n > 1], "duplicates"
    assert set(copies) <= set(new), "a copy of something else than a new image (a copy of a copy?)"
    by_source = {job["source_image_id"]: job for job in jobs}
    starts = sorted(run.started for run in seen.values())
    # An image listed at a whole second appeared within the second after it: the first run that started after
    # that second had it in its listing.
    due = {image_id: next((s for s in starts if s > at + 1), None) for image_id, at in new.items()}
    due = {image_id: start for image_id, start in due.items() if start is not None}

    def superseded(image_id: str, start: float) -> bool:
        """KEEP_LAST newer versions of its lineage may have been listed by its run (created before it started)."""
        lineage, at = _lineage(sources[image_id].name), new[image_id]
        newer = [i for i, t in new.items() if _lineage(sources[i].name) == lineage and (t, i) > (at, image_id)]
        return sum(1 for i in newer if new[i] < start) >= KEEP_LAST

    missing = [i for i, start in due.items() if i not in by_source and not superseded(i, start)]
    assert not missing, f"new images no run copied: {missing}"
    copied = {i: start for i, start in due.items() if i in by_source}
    finished_by_start = {run.started: run.finished for run in seen.values()}
    late = {
        image_id: (by_source[image_id]["begin"] - new[image_id], finished_by_start[start] - new[image_id])
        for image_id, start in copied.items()
        if by_source[image_id]["begin"] > finished_by_start[start]
    }
    assert not late, f"copied after the first run that started after them ended (lag, its bound): {late}"
    # The lags in seconds, for the record (whole-second creation times: up to a second too long); "on time": images
    # whose next run came within an interval, i.e. not held up by a fault.
    lags = {i: by_source[i]["begin"] - new[i] for i in copied}
    on_time = [lags[i] for i, start in copied.items() if start - new[i] <= EVERY + 1]
    print(
        f"\n{len(lags)} new images copied once each, {len(due) - len(copied)} left out as superseded; "
        f"lag max {max(lags.values()):.1f}s, on time max {max(on_time):.1f}s"
    )
    # Every copy carries its provenance, as later runs read it (those retention deleted are no longer listed).
    tagged = {image.id: image for image in listed if image.tag(PROVENANCE_POLICY) == policy_id}
    assert {image.copied_from for image in tagged.values()} <= set(copies)
    assert all(image.tag(PROVENANCE_SOURCE) == image.copied_from for image in tagged.values())
    alive = {job["image_id"] for job in jobs} & {image.id for image in listed}
    assert alive == set(tagged), "a copy of the policy's without its provenance tags"


def _lineage(name: str) -> str:
    """The simulator names a lineage's versions ``<stem>-v<n>`` (simulator/newimages.py)."""
    return name.rsplit("-v", 1)[0]


def _ranked(jobs: list[dict[str, Any]], sources: dict[str, Image]) -> dict[str, list[str]]:
    """The copies (image IDs) of each lineage, newest source first (ties by source ID), as retention ranks them."""
    lineages: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        lineages.setdefault(_lineage(sources[job["source_image_id"]].name), []).append(job)
    order = {i: (sources[i].created_at.timestamp() if sources[i].created_at else 0.0, i) for i in sources}
    return {
        lineage: [j["image_id"] for j in sorted(copies, key=lambda j: order[j["source_image_id"]], reverse=True)]
        for lineage, copies in lineages.items()
    }


def _kept_and_retired(jobs: list[dict[str, Any]], listed: list[Image], last_start: float) -> tuple[set, set]:
    """The copies retention must have kept (each lineage's newest KEEP_LAST of all) and those it must have deleted
    by the end of the last run's retention: outside the newest KEEP_LAST of the copies made before the last run
    began, every one of which that run judged (its own copies may have been judged too, which retires more of the
    older ones, never one of the newest)."""
    sources = {image.id: image for image in listed if image.copied_from is None}
    jobs = [job for job in jobs if job["source_image_id"] in sources]  # a deleted source fails _check_retention
    kept = {c for ranked in _ranked(jobs, sources).values() for c in ranked[:KEEP_LAST]}
    earlier = [job for job in jobs if job["begin"] < last_start]
    retired = {c for ranked in _ranked(earlier, sources).values() for c in ranked[KEEP_LAST:]}
    return kept, retired


def _left_to_retire(jobs: list[dict[str, Any]], listed: list[Image], last_start: float) -> set[str]:
    listed_ids = {image.id for image in listed}
    return _kept_and_retired(jobs, listed, last_start)[1] & listed_ids


def _check_retention(jobs: list[dict[str, Any]], listed: list[Image], last_start: float) -> None:
    """Retention kept each lineage's newest copies, deleted the older ones, and nothing it did not make: every
    source of a copy is still there, and every image gone is one of the policy's copies outside the newest."""
    listed_ids = {image.id for image in listed}
    assert {job["source_image_id"] for job in jobs} <= listed_ids, "a source image deleted"
    kept, retired = _kept_and_retired(jobs, listed, last_start)
    gone = {job["image_id"] for job in jobs} - listed_ids
    assert kept <= listed_ids, f"retention deleted a copy it keeps: {kept - listed_ids}"
    assert retired <= gone, f"copies retention should have deleted: {retired - gone}"
    assert not gone & kept
    assert retired, "no lineage gained a second version: retention was not tried"
    print(f"retention: {len(gone)} copies deleted, {len(kept)} kept as their lineage's newest")
