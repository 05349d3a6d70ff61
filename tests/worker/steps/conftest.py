"""Fixtures for the pipeline steps: a real Redis, the simulator over real HTTP, no Celery.

``drive`` runs the messages the way the workers would (``worker.dispatch``, production's middleware), in due order,
with countdowns capped so tests stay fast.
"""

from __future__ import annotations

import heapq
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable

import httpx
import pytest

from config.settings import Settings, load_settings
from tests.support import FAST_TIMINGS
from worker import steps
from worker.call import Message
from worker.data import NewItem
from worker.data.plans import PlanRecord
from worker.dispatch import dispatch
from worker.domain.item import ReplicationItem
from worker.domain.ownership import Owner
from worker.domain.policy import Policy, PolicyDefinition, Schedule
from worker.domain.spec import ItemSpec
from worker.ims.client import ImsClient
from worker.queues import TaskName
from worker.runtime import build_context
from worker.steps import Next, StepContext


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
    # More accounts of the simulator (``accounts={name: fields}``), each like the default one but for its fields.
    others = {name: {**account, **fields} for name, fields in overrides.pop("accounts", {}).items()}
    account.update(overrides.pop("account", {}))
    timings = {**FAST_TIMINGS, **overrides}  # the test stacks' profile: every countdown within 2 s
    accounts = {"default": account, **others}
    return load_settings(redis_url=redis_url, key_prefix=prefix, demo=True, accounts=accounts, **timings)


@pytest.fixture
def sim(start_simulator):
    return start_simulator(copy_seconds=0.5, image_quota=1000, seed=7)


@pytest.fixture
def make_context(redis_server, sim) -> Iterable[Callable[..., StepContext]]:
    built = []

    def make(**overrides: object) -> StepContext:
        ctx = build_context(sim_settings(redis_server.url, sim, f"t{uuid.uuid4().hex[:8]}", **overrides))
        built.append(ctx.clients)  # a test may swap ctx.clients for a fake
        return ctx

    yield make
    for clients in built:
        clients.close()


@pytest.fixture
def ctx(make_context) -> StepContext:
    return make_context()


@pytest.fixture
def ims(ctx) -> ImsClient:
    return ctx.clients("default")


def image_id(client: ImsClient, name: str) -> str:
    return next(i.id for i in client.list_images(name=name))


def ims_calls(ctx: StepContext) -> Counter[str]:
    """Every IMS call the context's steps made so far, by ``<endpoint>:<outcome>`` (the answers its process
    counted itself added up first, as a task's end does)."""
    ctx.data.flush()
    return Counter({f"{endpoint}:{outcome}": n for (endpoint, outcome), n in ctx.data.telemetry.ims_outcomes().items()})


def store_items(ctx: StepContext, *specs: ItemSpec) -> list[str]:
    return ctx.data.records.create_batch([NewItem(spec, "default") for spec in specs]).item_ids


def run_step(ctx: StepContext, nxt: Next, *, redelivered: bool = False) -> list[Next]:
    """Run one message the way a worker does (``worker.dispatch``: every middleware, a bundle's items, the submits a
    poll hands on, waited for if they go on behind it); returns what it published, their due times recorded."""
    published: list[Next] = []
    dispatch(ctx, Message.of(nxt, id=uuid.uuid4().hex, redelivered=redelivered), published.extend)
    assert ctx.behind is None or ctx.behind.drain(30.0), "steps left behind the message did not end"
    return published


def drive(
    ctx: StepContext,
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
        push(run_step(ctx, nxt))
        ran.append(nxt)
        if watch:
            watch()
    return ran


def run_batch(ctx: StepContext, *specs: ItemSpec, **kwargs: object) -> list[ReplicationItem]:
    ids = store_items(ctx, *specs)
    batch_id = ctx.data.records.get_item(ids[0]).batch_id
    drive(ctx, [Next(TaskName.ADMIT, {"batch_id": batch_id})], **kwargs)
    return [ctx.data.records.get_item(i) for i in ids]


def store_policy(ctx: StepContext, prefix: str, **definition: object) -> Policy:
    """A policy of the default account over the images named ``prefix…``, stored due now."""
    fields = {
        "name": "nightly",
        "selector": {"name_prefix": prefix},
        "template": {"name": "{name}-copy", "tags": {"team": "web"}},  # its copies match the selector too
        "schedule": Schedule(every=60),
        **definition,
    }
    policy = Policy(
        id=uuid.uuid4().hex,
        definition=PolicyDefinition(**fields),
        account="default",
        region=ctx.settings.accounts["default"].region,
        owner=Owner.of("alice", ["default"]),
        created_at=ctx.clock(),
        updated_at=ctx.clock(),
        next_run_at=ctx.clock(),
    )
    ctx.data.policies.save(policy)
    return policy


def add_images(sim, name: str, count: int) -> list[str]:
    """``count`` new images named ``name`` and a number continuing the project's (simulator.newimages)."""
    answer = httpx.post(f"{sim.url}/_sim/images", json={"count": count, "name": name + "{n}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return [image["id"] for image in answer.json()["images"]]


def make_due(ctx: StepContext, policy: Policy) -> None:
    ctx.data.policies.due_now(policy.id, ctx.clock())


def run_policy(ctx: StepContext, policy: Policy) -> str:
    """One run, driven to its end like the workers would (its retention included); its batch."""
    make_due(ctx, policy)
    started = steps.start_runs(ctx)
    drive(ctx, started, timeout=60)
    batch_id = ctx.data.policies.load(policy.id).last_batch
    assert batch_id == started[0].kwargs["batch_id"]
    assert ctx.data.records.batch(batch_id).done
    return batch_id


def plan_policy(ctx: StepContext, policy: Policy) -> PlanRecord:
    """A plan of the policy's next run (as stored now), worked out; its record."""
    stored = ctx.data.policies.load(policy.id)
    selection = stored.selection(ctx.clock())
    plan = ctx.data.plans.create(
        [], ttl=600, first_stage="page", selection=selection, now=ctx.clock(), owner=stored.owner
    )
    drive(ctx, [Next(TaskName.PLAN, {"plan_id": plan.plan_id, "stage": "page", "marker": ""})])
    return ctx.data.plans.load(plan.plan_id)
