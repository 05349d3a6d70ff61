"""Policies in Redis: stored, listed, deleted; a due run claimed once however many ticks race for it, recorded
once, and skipped runs recorded as such; a finished run's copies counted once; a policy's status."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from worker.data import (
    BatchSummary,
    DataLayer,
    Finished,
    Outcome,
    PolicyStatus,
    Run,
    SelectionProgress,
    open_data_layer,
)
from worker.domain.ownership import Owner
from worker.domain.policy import Policy, PolicyDefinition, Schedule
from worker.domain.states import ItemState


@pytest.fixture
def data(redis_server) -> DataLayer:
    layer = open_data_layer(redis_server.url, f"pol{uuid.uuid4().hex[:8]}")
    yield layer
    layer.close()


def _policy(due: float | None, **definition) -> Policy:
    fields = {"name": "p", "selector": {}, "template": {}, "schedule": Schedule(every=60), **definition}
    return Policy(
        id=uuid.uuid4().hex,
        definition=PolicyDefinition(**fields),
        account="default",
        region="cn-north-4",
        owner=Owner.of("alice", ["default"]),
        created_at=time.time(),
        updated_at=time.time(),
        next_run_at=due,
    )


def test_saved_policies_are_loaded_listed_due_and_deleted(data) -> None:
    now = time.time()
    due, later, paused = _policy(now - 1), _policy(now + 60), _policy(None, paused=True)
    for policy in (due, later, paused):
        data.policies.save(policy)
    assert data.policies.load(due.id).definition == due.definition
    assert [p.id for p in data.policies.every()] == [due.id, later.id, paused.id]
    assert [p.id for p in data.policies.due(now, limit=10)] == [due.id]
    assert data.policies.delete(due.id) and not data.policies.delete(due.id)
    assert data.policies.load(due.id) is None and [p.id for p in data.policies.due(now, limit=10)] == []


def test_two_ticks_at_once_start_one_run(data) -> None:
    policy = _policy(time.time() - 1)
    data.policies.save(policy)
    now = time.time()
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: data.policies.claim(policy, now, now + 60), range(8)))
    assert sorted(claims, key=lambda c: c or 0) == [None] * 7 + [1]
    claimed = data.policies.load(policy.id)
    assert (claimed.runs, claimed.starting) == (1, 1)
    # Still due until its batch is recorded, but no second run is claimed meanwhile, even at the new number.
    assert [p.id for p in data.policies.due(now, limit=10)] == [policy.id]
    assert data.policies.claim(claimed, now, now + 60) is None
    assert data.policies.record(policy.id, Run(1, now, batch_id="b" * 32))
    assert not data.policies.record(policy.id, Run(1, now, batch_id="b" * 32))  # once
    recorded = data.policies.load(policy.id)
    assert (recorded.starting, recorded.last_batch, recorded.next_run_at) == (None, "b" * 32, now + 60)
    assert data.policies.due(now, limit=10) == [] and data.policies.due(now + 60, limit=10)[0].id == policy.id
    assert data.policies.runs(policy.id, limit=5) == [Run(1, now, batch_id="b" * 32)]


def test_a_run_not_due_or_paused_is_not_claimed_and_a_skipped_one_is_recorded(data) -> None:
    now = time.time()
    later, paused = _policy(now + 60), _policy(None, paused=True)
    data.policies.save(later)
    data.policies.save(paused)
    assert data.policies.claim(later, now, now + 60) is None and data.policies.claim(paused, now, now + 60) is None
    data.policies.due_now(later.id, now)
    data.policies.due_now(paused.id, now)  # only an active policy is made due
    assert [p.id for p in data.policies.due(now, limit=10)] == [later.id]
    assert data.policies.claim(later, now, now + 60, skipped="busy") == 1
    assert data.policies.run(later.id, 1) == Run(1, now, skipped=True, message="busy")
    assert data.policies.load(later.id).starting is None and data.policies.due(now, limit=10) == []


def test_a_policy_deleted_while_its_run_starts_is_not_brought_back(data) -> None:
    policy = _policy(time.time() - 1)
    data.policies.save(policy)
    assert data.policies.claim(policy, time.time(), time.time() + 60) == 1
    data.policies.delete(policy.id)
    assert not data.policies.record(policy.id, Run(1, time.time(), batch_id="b" * 32))
    assert data.policies.load(policy.id) is None and data.policies.every() == []


def test_a_finished_runs_copies_are_added_once_whoever_claims_next(data) -> None:
    policy = _policy(time.time() - 1)
    data.policies.save(policy)
    now = time.time()
    ended = Finished("b" * 32, made=7)
    assert data.policies.claim(policy, now, now - 1, skipped="busy", finished=ended) == 1
    stored = data.policies.load(policy.id)
    assert (stored.made, stored.counted) == (7, "b" * 32)
    assert data.policies.claim(stored, now, now + 60, skipped="busy", finished=ended) == 2  # the same batch again
    assert data.policies.load(policy.id).made == 7


def _batch(total: int, counts: dict[ItemState, int], *, copies_read: bool = True, oldest: float | None = None):
    selection = SelectionProgress(
        "done", 0, 0, total, copied=1 if copies_read else 0, copies_read=copies_read, oldest_uncopied=oldest
    )
    return BatchSummary("c" * 32, 1000.0, total, counts, selection=selection)


@pytest.mark.parametrize(
    ("batch", "outcome", "lag"),
    [
        (None, Outcome.DELETED, None),
        (_batch(2, {ItemState.SUCCEEDED: 1, ItemState.REPLICATING: 1}, oldest=900.0), Outcome.RUNNING, 100.0),
        (_batch(2, {ItemState.SUCCEEDED: 1, ItemState.REJECTED: 1}, oldest=1200.0), Outcome.FAILED, 0.0),
        (_batch(0, {}), Outcome.SUCCEEDED, 0.0),
        (_batch(0, {}, copies_read=False), Outcome.SUCCEEDED, None),
    ],
)
def test_a_status_reads_outcome_and_lag_from_the_latest_batch(batch, outcome, lag) -> None:
    policy = replace(_policy(None), runs=1, last_batch="c" * 32, last_started=1, made=5)
    run = Run(1, 1000.0, batch_id="c" * 32)
    status = PolicyStatus(policy, run, run, batch)
    assert (status.outcome, status.lag) == (outcome, lag)  # a clock a little ahead of IMS's gives 0, not less
    assert status.made == 5 + (batch.counts.get(ItemState.SUCCEEDED, 0) if batch else 0)  # counted live, not yet
    skipped = PolicyStatus(policy, Run(2, 1060.0, skipped=True, message="busy"), run, batch)
    assert (skipped.outcome, skipped.lag) == (Outcome.SKIPPED, lag)
