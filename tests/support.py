"""Helpers that tests of several tiers share (imported as ``tests.support``; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Sequence

import httpx
from packaging.markers import Marker
from packaging.requirements import Requirement

from cli.processes import wait_until
from cli.stack import HOST, LocalStack
from config.settings import ENV_PREFIX, AccountSettings
from worker.data import DataLayer, NewItem, PoolStatus, Quota, RecordStore, Run
from worker.data.accounts import Health
from worker.domain.pools import Pool
from worker.domain.spec import ItemSpec
from worker.domain.states import MOVES, Event, ItemState
from worker.ims.client import ImsClient

# The one timing profile of test stacks (Settings names): polls, retries and the maintenance that repairs what faults
# upset (the reconciler, probes of an account or a full pool, the submit lock's lease) in tenths of a second to
# seconds, not production's minutes, so a test that waits for a repair waits seconds, not a reconcile interval (30 s)
# or a probe interval (60 s). Every countdown stays within 2 s, well inside any visibility timeout Settings accepts.
FAST_TIMINGS: dict[str, float] = {
    "poll_initial_delay": 0.5,
    "poll_min_interval": 0.2,
    "poll_max_interval": 2.0,
    "retry_base_delay": 0.2,
    "retry_max_delay": 2.0,
    "stall_seconds": 4.0,
    "reconcile_interval": 2.0,
    "probe_interval": 0.5,
    "probe_max_interval": 2.0,
    "submit_lease_seconds": 2.0,
}
# Short time limits (Settings names) for stacks whose workers are killed, so that a killed worker's work comes back in
# seconds: a running step is resent past its 6 s time limit (not production's 90 s), and visibility_timeout (10) >
# longest countdown (2) + task_time_limit (6), as Settings demands.
CRASH_TIMINGS: dict[str, float] = {
    "task_soft_time_limit": 5,
    "task_time_limit": 6,
    "visibility_timeout": 10,
    "http_connect_timeout": 2,
    "http_read_timeout": 3,
    "worker_soft_shutdown_seconds": 2,  # a stopped worker's tasks (6 s at most) are handed back sooner
}
# The default account's request rate in test stacks (production's default is 20/s, bursts of 20): a 200-item batch
# makes some 700 IMS calls, which at 20/s took half a minute of waiting on the rate limiter alone. The simulator
# enforces no gateway limit unless a test asks it to; tests/worker/test_ratelimit.py covers the limiter.
_DEFAULT_ACCOUNT = f"{ENV_PREFIX}ACCOUNTS__DEFAULT__"
FAST_RATE_ENV = {f"{_DEFAULT_ACCOUNT}REQUEST_RATE": "100", f"{_DEFAULT_ACCOUNT}REQUEST_BURST": "50"}


def fast_env(**overrides: float) -> dict[str, str]:
    """``FAST_TIMINGS`` with ``overrides`` (Settings names), as a stack's environment."""
    return {f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in {**FAST_TIMINGS, **overrides}.items()}


def events_to(source: ItemState, target: ItemState) -> list[Event]:
    """The shortest run of events that takes an item from ``source`` to ``target`` (``MOVES``, the one table)."""
    paths: dict[ItemState, list[Event]] = {source: []}
    todo = deque([source])
    while todo:
        state = todo.popleft()
        if state is target:
            return paths[state]
        for event, move in MOVES.items():
            if state in move.sources and move.target not in paths:
                paths[move.target] = [*paths[state], event]
                todo.append(move.target)
    raise ValueError(f"no run of events leads from {source.value} to {target.value}")


def walk_to(records: RecordStore, item_id: str, target: ItemState, **fields: object) -> None:
    """Move a stored item to ``target`` by legal events only; the last event also sets ``fields``."""
    item = records.get_item(item_id)
    assert item is not None, item_id
    events = events_to(item.state, target)
    for index, event in enumerate(events):
        extra = fields if index == len(events) - 1 else {}
        assert records.move(item, event, **extra).ok, (item_id, event)


def queue_items(data: DataLayer, item_ids: Sequence[str], pool: Pool, stride: float = 1.0, start: float = 0.0) -> None:
    """Put stored items in ``pool``'s line as validation does (``waiting``), in order: arrivals ``start``,
    ``start + 1``..."""
    for arrival, item in enumerate(data.records.get_items(item_ids)):
        walk_to(data.records, item.id, ItemState.VALIDATING)
        assert data.wait_for_slot(item, Event.VALIDATED, pool, stride, start + arrival).ok, item.id


def ended_run(data: DataLayer, policy_id: str, states: Sequence[ItemState], *, oldest_age: float) -> str:
    """A policy's next run as a worker leaves it, without one: claimed and recorded, its selection listed (its
    oldest uncopied image ``oldest_age`` seconds old at its start) and ended, an item per state in ``states``."""
    policy = data.policies.load(policy_id)
    assert policy is not None, policy_id
    now = time.time()
    run = data.policies.claim(policy, now, now + 60)
    assert run is not None, policy_id
    items = [NewItem(ItemSpec(image_id=str(uuid.uuid4())), policy.account) for _ in states]
    batch = data.records.create_batch(items, now, selection=policy.selection(now), owner=policy.owner)
    assert data.policies.record(policy_id, Run(run, now, batch_id=batch.batch_id))
    data.selections.leave_out(batch.batch_id, [], copied=0)
    data.selections.note_uncopied(batch.batch_id, now - oldest_age)
    data.selections.add_page(batch.batch_id, "", [], next_marker="", listed=0, matched=0, last=True)
    for item_id, state in zip(batch.item_ids, states, strict=True):
        walk_to(data.records, item_id, state)
    return batch.batch_id


CLOSED = Health(open=False, failures=0, probe_at=None, outage_seconds=0.0)


def pool_status(
    pool: Pool,
    *,
    queued: int = 3,
    in_use: int = 5,
    effective: int = 5,
    health: Health = CLOSED,
    headroom: int | None = 10,
) -> PoolStatus:
    """A pool's status as ``DataLayer.pool_statuses`` reads it; its project's quota of 50 with ``headroom`` left
    (None: not read yet)."""
    if headroom is None:
        quota = Quota(None, 0, 0, None, None, exhausted=False)
    else:
        quota = Quota(50, 50 - headroom, 0, 1.0, None, exhausted=False)
    return PoolStatus(pool, in_use, queued, effective, health, quota)


def password_url(stack: LocalStack, db: int = 0) -> str:
    """The stack's one Redis as one string with its password in it: what a test hands a process or a client."""
    return f"redis://:{stack.passwords.server}@{HOST}:{stack.port('redis')}/{db}"


def debian_package(program: str, package: str) -> str | None:
    """Install Debian's ``package`` when ``program`` is missing and we may (root with apt-get: a fresh machine);
    return why it is not there, or None. It can take minutes: call it from a session fixture, before anything timed."""
    if shutil.which(program):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"Debian's {package} is not installed and we are not root with apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        if done.returncode != 0:
            return f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}"
    return None


def locked_pins(constraints: str) -> dict[str, str]:
    """constraints.txt's pins that apply to this Python (their markers evaluated), name -> version."""
    pins = {}
    for line in constraints.splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            if requirement.marker is None or Marker(str(requirement.marker)).evaluate():
                pins[requirement.name] = str(requirement.specifier).removeprefix("==")
    return pins


def accept_share(owner: ImsClient, account: AccountSettings, member: str, image_id: str) -> None:
    """Project ``member`` of ``account`` accepts ``image_id`` as its own users would (``update_member_status``,
    ims-contract §12), once the owner's member job has shared it; the owner's client ``owner`` then sees it
    accepted."""

    def members() -> list[tuple[str, str]]:
        return [(m.member_id, m.status) for m in owner.image_members(image_id)]

    wait_until(lambda: bool(members()), 10, f"{image_id} shared")  # the owner's member job is asynchronous
    with ImsClient(account.model_copy(update={"project_id": member}), connect_timeout=5, read_timeout=10) as ims:
        ims.update_member_status([image_id], "accepted")
    wait_until(lambda: members() == [(member, "accepted")], 10, f"{member} accepting {image_id}")


def add_versions(simulator_url: str, name: str, count: int) -> list[str]:
    """``count`` new images named ``name`` and the next number (``POST /_sim/images``), each made in a second of its
    own: IMS times images to the second, and a retention rule ranks versions of one second by ID
    (worker.domain.retirement)."""
    made: list[str] = []
    for _ in range(count):
        answer = httpx.post(f"{simulator_url}/_sim/images", json={"name": name + "{n}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        made += [image["id"] for image in answer.json()["images"]]
        second = int(time.time())
        wait_until(lambda: int(time.time()) > second, 2, "the next second")  # noqa: B023 (called at once)
    return made
