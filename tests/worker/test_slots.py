"""The slot pool against a real Redis server: the limit holds under concurrency, FIFO, cancelled items skipped."""

from __future__ import annotations

import threading
import uuid

import pytest

from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.slots import SlotPool
from worker.store import NewItem, RecordStore


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(redis_server, prefix) -> RecordStore:
    return RecordStore(redis_server.client(), prefix=prefix)


@pytest.fixture
def pool(redis_server, prefix) -> SlotPool:
    return SlotPool(redis_server.client(), prefix=prefix)


def _waiting(store: RecordStore, pool: SlotPool, n: int, account: str = "default") -> list[str]:
    ids = store.create_batch([NewItem(ItemSpec(image_id=str(uuid.uuid4())), account) for _ in range(n)]).item_ids
    for arrival, item_id in enumerate(ids):
        store.transition(item_id, ItemState.VALIDATING)
        store.transition(item_id, ItemState.WAITING)
        pool.enqueue(account, item_id, arrival)
    return ids


def test_admit_grants_the_oldest_up_to_the_limit(store, pool) -> None:
    ids = _waiting(store, pool, 8)
    assert pool.admit("default", 5) == ids[:5]
    assert pool.admit("default", 5) == []
    assert pool.in_use("default") == 5 and pool.queued("default") == 3


def test_enqueue_keeps_the_first_arrival(store, pool) -> None:
    ids = _waiting(store, pool, 2)
    pool.enqueue("default", ids[0], 99)
    assert pool.admit("default", 1) == [ids[0]]


def test_cancelled_items_are_dropped_not_granted(store, pool) -> None:
    ids = _waiting(store, pool, 4)
    store.transition(ids[0], ItemState.CANCELLED)
    store.transition(ids[2], ItemState.CANCELLED)
    assert pool.admit("default", 5) == [ids[1], ids[3]]
    assert pool.queued("default") == 0


def test_release_then_admit_hands_the_slot_to_the_next(store, pool) -> None:
    ids = _waiting(store, pool, 3)
    assert pool.admit("default", 2) == ids[:2]
    assert pool.release("default", ids[0])
    assert not pool.release("default", ids[0])
    assert pool.admit("default", 2) == [ids[2]]
    assert sorted(pool.holders("default")) == sorted([ids[1], ids[2]])


def test_accounts_are_separate(store, pool) -> None:
    a = _waiting(store, pool, 3, "a")
    b = _waiting(store, pool, 3, "b")
    assert pool.admit("a", 2) == a[:2]
    assert pool.admit("b", 2) == b[:2]
    assert pool.accounts() >= {"a", "b"}


def test_concurrent_admits_never_exceed_the_limit(redis_server, store, pool, prefix) -> None:
    ids = _waiting(store, pool, 60)
    granted: list[str] = []
    lock = threading.Lock()
    peak = 0

    def work() -> None:
        nonlocal peak
        mine = SlotPool(redis_server.client(), prefix=prefix)
        for _ in range(40):
            got = mine.admit("default", 5)
            with lock:
                granted.extend(got)
                peak = max(peak, mine.in_use("default"))
            for item_id in got:  # finish the item, free its slot
                store.transition(item_id, ItemState.SUBMITTING)
                store.transition(item_id, ItemState.FAILED)
                mine.release("default", item_id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak <= 5
    assert sorted(granted) == sorted(ids)  # each item granted exactly once
