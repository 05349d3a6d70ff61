"""The record store against a real Redis server."""

from __future__ import annotations

import uuid

import pytest

from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.store import NewItem, RecordStore


@pytest.fixture
def store(redis_server) -> RecordStore:
    return RecordStore(redis_server.client(), prefix=f"t{uuid.uuid4().hex[:8]}")


def _items(n: int) -> list[NewItem]:
    return [NewItem(ItemSpec(image_id=str(uuid.uuid4()), name=f"img {i}"), "default") for i in range(n)]


def test_create_batch_stores_every_item_accepted(store: RecordStore) -> None:
    stored = store.create_batch(_items(3))
    summary = store.batch(stored.batch_id)
    assert summary is not None
    assert summary.total == 3 and summary.counts[ItemState.ACCEPTED] == 3 and not summary.done
    item = store.get_item(stored.item_ids[1])
    assert item is not None and item.name == "img 1" and item.state is ItemState.ACCEPTED
    assert item.kms_key is None and item.account == "default"
    assert [t.state for t in store.history(item.id)] == [ItemState.ACCEPTED]


def test_transition_moves_counts_index_and_history_together(store: RecordStore) -> None:
    stored = store.create_batch(_items(2))
    item_id = stored.item_ids[0]
    assert store.transition(item_id, ItemState.VALIDATING).ok
    result = store.transition(
        item_id, ItemState.REJECTED, reason=ReasonCode.ISO_IMAGE, message="ISO images cannot be replicated"
    )
    assert result.ok and result.previous is ItemState.VALIDATING
    item = store.get_item(item_id)
    assert item.state is ItemState.REJECTED and item.reason is ReasonCode.ISO_IMAGE
    summary = store.batch(stored.batch_id)
    assert summary.counts[ItemState.REJECTED] == 1 and summary.counts[ItemState.ACCEPTED] == 1
    assert summary.counts[ItemState.VALIDATING] == 0
    assert store.counts_by_state()[ItemState.REJECTED] == 1
    log = store.history(item_id)
    assert [t.state for t in log] == [ItemState.ACCEPTED, ItemState.VALIDATING, ItemState.REJECTED]
    assert log[-1].reason is ReasonCode.ISO_IMAGE


def test_transition_refused_from_a_wrong_state(store: RecordStore) -> None:
    item_id = store.create_batch(_items(1)).item_ids[0]
    result = store.transition(item_id, ItemState.SUCCEEDED)
    assert not result.ok and result.previous is ItemState.ACCEPTED
    assert store.get_item(item_id).state is ItemState.ACCEPTED
    missing = store.transition("nope", ItemState.VALIDATING)
    assert not missing.ok and missing.previous is None


def test_update_if_only_in_expected_state(store: RecordStore) -> None:
    item_id = store.create_batch(_items(1)).item_ids[0]
    assert not store.update_if(item_id, ItemState.REPLICATING, progress=0.5)
    assert store.update_if(item_id, ItemState.ACCEPTED, progress=0.25)
    assert store.get_item(item_id).progress == 0.25


def test_batch_items_pages_with_state_filter(store: RecordStore) -> None:
    stored = store.create_batch(_items(7))
    for item_id in stored.item_ids[::2]:
        store.transition(item_id, ItemState.CANCELLED)
    page, cursor = store.batch_items(stored.batch_id, limit=3)
    assert [i.id for i in page] == stored.item_ids[:3] and cursor == 3
    cancelled, cursor = store.batch_items(stored.batch_id, state=ItemState.CANCELLED, limit=2)
    assert [i.id for i in cancelled] == stored.item_ids[0:4:2] and cursor is not None
    rest, cursor = store.batch_items(stored.batch_id, state=ItemState.CANCELLED, limit=10, cursor=cursor)
    assert [i.id for i in rest] == stored.item_ids[4::2] and cursor is None
