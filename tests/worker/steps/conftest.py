"""Fixtures for the pipeline steps: a real Redis, the simulator over real HTTP, no Celery.

``drive`` runs the steps the way the workers would, in due order, with countdowns capped so tests stay fast.
"""

from __future__ import annotations

import heapq
import itertools
import time
import uuid
from collections.abc import Callable, Iterable

import pytest

from config.settings import Settings, load_settings
from worker import steps
from worker.domain.item import ReplicationItem
from worker.domain.spec import ItemSpec
from worker.ims.client import ImsClient
from worker.queues import Task
from worker.runtime import build_pipeline
from worker.steps import Next, Pipeline
from worker.store import NewItem

FAST = {
    "poll_initial_delay": 0.2,
    "poll_min_interval": 0.1,
    "poll_max_interval": 0.5,
    "retry_base_delay": 0.05,
    "retry_max_delay": 0.2,
}


def sim_settings(redis_url: str, sim, prefix: str, **overrides: object) -> Settings:
    account = {
        "region": sim.region,
        "project_id": sim.project_id,
        "ims_endpoint": sim.url,
        "kms_endpoint": sim.url,
        "iam_endpoint": sim.url,
        "access_key": sim.access_key,
        "secret_key": sim.secret_key,
        "request_rate": 200,
        "request_burst": 50,
    }
    account.update(overrides.pop("account", {}))
    return load_settings(
        redis_url=redis_url, key_prefix=prefix, demo=True, accounts={"default": account}, **{**FAST, **overrides}
    )


@pytest.fixture
def sim(start_simulator):
    return start_simulator(copy_seconds=0.5, image_quota=1000, seed=7)


@pytest.fixture
def make_pipeline(redis_server, sim) -> Iterable[Callable[..., Pipeline]]:
    built = []

    def make(**overrides: object) -> Pipeline:
        p = build_pipeline(sim_settings(redis_server.url, sim, f"t{uuid.uuid4().hex[:8]}", **overrides))
        built.append(p.clients)  # a test may swap p.clients for a fake
        return p

    yield make
    for clients in built:
        clients.close()


@pytest.fixture
def pipeline(make_pipeline) -> Pipeline:
    return make_pipeline()


@pytest.fixture
def ims(pipeline) -> ImsClient:
    return pipeline.clients("default")


def image_id(client: ImsClient, name: str) -> str:
    return next(i.id for i in client.list_images(name=name))


def store_items(p: Pipeline, *specs: ItemSpec) -> list[str]:
    return p.store.create_batch([NewItem(spec, "default") for spec in specs]).item_ids


def run_step(p: Pipeline, nxt: Next) -> list[Next]:
    k = nxt.kwargs
    if nxt.task is Task.ADMIT:
        return steps.admit(p, str(k["batch_id"]), int(k.get("cursor", 0)))
    if nxt.task is Task.VALIDATE:
        return steps.validate(p, str(k["item_id"]))
    if nxt.task is Task.SUBMIT:
        return steps.submit(p, str(k["item_id"]))
    if nxt.task is Task.POLL:
        return steps.poll(p, str(k["item_id"]), int(k["seq"]))
    return steps.reconcile(p)


def drive(
    p: Pipeline,
    nexts: Iterable[Next],
    *,
    timeout: float = 30.0,
    cap: float = 0.2,
    watch: Callable[[], None] | None = None,
) -> list[Next]:
    """Run every step until none is left; returns what ran, in order. ``watch`` is called after each step."""
    order = itertools.count()
    due: list[tuple[float, int, Next]] = []

    def push(items: Iterable[Next]) -> None:
        for n in items:
            heapq.heappush(due, (time.monotonic() + min(n.countdown, cap), next(order), n))

    push(nexts)
    ran: list[Next] = []
    deadline = time.monotonic() + timeout
    while due:
        at, _, nxt = heapq.heappop(due)
        if time.monotonic() > deadline:
            raise TimeoutError(f"steps still running after {timeout}s: {nxt}")
        time.sleep(max(0.0, at - time.monotonic()))
        push(run_step(p, nxt))
        ran.append(nxt)
        if watch:
            watch()
    return ran


def run_batch(p: Pipeline, *specs: ItemSpec, **kwargs: object) -> list[ReplicationItem]:
    ids = store_items(p, *specs)
    batch_id = p.store.get_item(ids[0]).batch_id
    drive(p, [Next(Task.ADMIT, {"batch_id": batch_id})], **kwargs)
    return [p.store.get_item(i) for i in ids]
