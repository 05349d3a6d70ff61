"""The slot pool against a real Redis server: the limit holds under concurrency, FIFO, cancelled items skipped."""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.support import walk_to
from worker.data import DataLayer, NewItem, RecordStore, SlotPool
from worker.domain.pools import pool_of
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def data(redis_server, prefix) -> DataLayer:
    return redis_server.data(prefix)


@pytest.fixture
def store(data) -> RecordStore:
    return data.records


@pytest.fixture
def pool(data) -> SlotPool:
    return data.slots


def _waiting(store: RecordStore, pool: SlotPool, n: int, account: str = "default") -> list[str]:
    ids = store.create_batch([NewItem(ItemSpec(image_id=str(uuid.uuid4())), account) for _ in range(n)]).item_ids
    for arrival, item_id in enumerate(ids):
        walk_to(store, item_id, ItemState.WAITING)
        pool.enqueue(account, item_id, arrival)
    return ids


def test_grant_goes_to_the_oldest_up_to_the_limit(store, pool) -> None:
    ids = _waiting(store, pool, 8)
    assert pool.grant("default", 5, 0.0) == ids[:5]
    assert pool.grant("default", 5, 0.0) == []
    assert pool.in_use("default") == 5 and pool.queued("default") == 3


def test_enqueue_keeps_the_first_arrival(store, pool) -> None:
    ids = _waiting(store, pool, 2)
    assert not pool.enqueue("default", ids[0], 99)
    assert pool.grant("default", 1, 0.0) == [ids[0]]


def test_cancelled_items_are_dropped_not_granted(store, pool) -> None:
    ids = _waiting(store, pool, 4)
    walk_to(store, ids[0], ItemState.CANCELLED)
    walk_to(store, ids[2], ItemState.CANCELLED)
    assert pool.grant("default", 5, 0.0) == [ids[1], ids[3]]
    assert pool.queued("default") == 0


def test_release_then_grant_hands_the_slot_to_the_next(store, pool) -> None:
    ids = _waiting(store, pool, 3)
    assert pool.grant("default", 2, 0.0) == ids[:2]
    assert pool.release("default", ids[0])
    assert not pool.release("default", ids[0])
    assert pool.grant("default", 2, 0.0) == [ids[2]]
    assert sorted(pool.holders("default")) == sorted([ids[1], ids[2]])


def test_accounts_are_separate(store, pool) -> None:
    a = _waiting(store, pool, 3, "a")
    b = _waiting(store, pool, 3, "b")
    assert pool.grant("a", 2, 0.0) == a[:2]
    assert pool.grant("b", 2, 0.0) == b[:2]
    assert pool.accounts() >= {"a", "b"}
    assert pool.in_use_by_account(["a", "b", "c"]) == {"a": 2, "b": 2, "c": 0}
    items = store.get_items([a[0], a[2], b[1]])
    assert pool.holding(items) == [True, False, True]


def test_concurrent_grants_never_exceed_the_limit(redis_server, store, pool, prefix) -> None:
    ids = _waiting(store, pool, 60)
    granted: list[str] = []
    lock = threading.Lock()
    peak = 0

    def work() -> None:
        nonlocal peak
        mine = redis_server.data(prefix).slots
        for _ in range(40):
            got = mine.grant("default", 5, 0.0)
            with lock:
                granted.extend(got)
                peak = max(peak, mine.in_use("default"))
            for item_id in got:  # finish the item, free its slot
                walk_to(store, item_id, ItemState.FAILED)
                mine.release("default", item_id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak <= 5
    assert sorted(granted) == sorted(ids)  # each item granted exactly once


def test_in_region_and_cross_region_pools_fill_apart(store: RecordStore, pool: SlotPool) -> None:
    """IMS counts cross-region copies apart from in-region ones: each pool has its own five."""
    specs = [ItemSpec(image_id=str(uuid.uuid4()), target_region="cn-south-1") for _ in range(7)]
    cross = store.create_batch([NewItem(spec, "default") for spec in specs]).item_ids
    for arrival, item_id in enumerate(cross):
        walk_to(store, item_id, ItemState.WAITING)
        pool.enqueue(pool_of(store.get_item(item_id)), item_id, arrival)
    local = _waiting(store, pool, 6)
    assert pool_of(store.get_item(cross[0])) == "default:cross-region"
    assert pool.grant("default:cross-region", 5, 100.0) == cross[:5]
    assert pool.grant("default", 5, 100.0) == local[:5]
    assert pool.holding(store.get_items([cross[0], cross[6], local[0]])) == [True, False, True]
    assert pool.accounts(["default"]) == {"default", "default:cross-region"}
    assert pool.release("default:cross-region", cross[0]) and not pool.release("default", cross[1])
