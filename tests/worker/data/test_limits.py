"""Per-principal limits against a real Redis server: the request bucket, and the count of a principal's unfinished
items from its batches' counts (docs/teams.md, "Limits")."""

from __future__ import annotations

import uuid

import pytest

from tests.support import walk_to
from worker.data import DataLayer, NewItem
from worker.domain.ownership import Owner
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState


@pytest.fixture
def data(redis_server) -> DataLayer:
    return redis_server.data()


ALICE = Owner.of("alice", ["default"])


def _batch(data: DataLayer, principal: str, n: int) -> list[str]:
    items = [NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default") for _ in range(n)]
    return data.records.create_batch(items, owner=Owner.of(principal, ["default"])).item_ids


def test_a_burst_then_a_wait_and_another_principal_has_its_own_bucket(data: DataLayer) -> None:
    assert [data.limits.take_request("alice", 1.0, 3) for _ in range(3)] == [0.0] * 3
    assert 0.9 < data.limits.take_request("alice", 1.0, 3) <= 1.0  # about a second until the next token
    assert 0.9 < data.limits.take_request("alice", 1.0, 3) <= 1.0  # a refusal takes nothing
    assert data.limits.take_request("bob", 1.0, 3) == 0.0


def test_unfinished_items_are_every_non_terminal_one_of_the_principals_own_batches(data: DataLayer) -> None:
    assert data.limits.unfinished("alice") == 0
    first, second = _batch(data, "alice", 6), _batch(data, "alice", 2)
    _batch(data, "bob", 4)
    walk_to(data.records, first[0], ItemState.VALIDATING)
    walk_to(data.records, first[1], ItemState.WAITING)
    walk_to(data.records, first[2], ItemState.REPLICATING)
    walk_to(data.records, first[3], ItemState.SUCCEEDED)
    walk_to(data.records, first[4], ItemState.REJECTED)
    assert data.limits.unfinished("alice") == 4 + 2 and data.limits.unfinished("bob") == 4
    for item_id in second:
        walk_to(data.records, item_id, ItemState.FAILED)
    assert data.limits.unfinished("alice") == 4
    assert data.records.batch(data.records.get_item(second[0]).batch_id).finished_at is not None


def test_an_ended_batch_leaves_the_index_and_a_retry_puts_it_back(data: DataLayer, redis_server) -> None:
    (only,) = _batch(data, "alice", 1)
    walk_to(data.records, only, ItemState.FAILED)
    assert data.limits.unfinished("alice") == 0
    assert redis_server.client().zcard(data.keys.running("alice")) == 0  # no longer read at each count
    item = data.records.get_item(only)
    walk_to(data.records, only, ItemState.ACCEPTED)  # a retry (Event.RETRY)
    data.limits.reopen("alice", item.batch_id, item.created_at)
    assert data.limits.unfinished("alice") == 1


def test_a_deleted_or_withdrawn_batch_leaves_the_index(data: DataLayer, redis_server) -> None:
    (only,) = _batch(data, "alice", 1)
    batch_id = data.records.get_item(only).batch_id
    walk_to(data.records, only, ItemState.SUCCEEDED)
    data.lifecycle.delete(batch_id)  # before any count dropped it: the deletion does
    assert redis_server.client().zcard(data.keys.running("alice")) == 0
    stored = data.records.create_batch([NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default")], owner=ALICE)
    assert data.records.withdraw(stored)
    assert redis_server.client().zcard(data.keys.running("alice")) == 0
