"""The slot pool against a real Redis server: the limit holds under concurrency, batches share fairly, IMS's own
view (full, quota, outage) holds grants back, and the backlog is a list Flower can count."""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.support import queue_items, walk_to
from worker.data import DataLayer, NewItem, Queued, QuotaAge, RecordStore, SlotPool
from worker.data.accounts import CircuitPolicy
from worker.domain.item import ReplicationItem
from worker.domain.pools import Pool, pool_name_of
from worker.domain.priority import Priority
from worker.domain.spec import ItemSpec
from worker.domain.states import Event, ItemState

POOL = Pool(name="default", account="default", limit=5, project="p" * 32)


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


def _waiting(
    data: DataLayer, n: int, pool: Pool = POOL, priority: Priority = Priority.NORMAL, start: float = 0.0
) -> list[str]:
    """A batch of ``n`` items, validated and queued in ``pool`` in order (arrival ``start``, ``start + 1``...)."""
    items = [NewItem(ItemSpec(image_id=str(uuid.uuid4())), pool.account) for _ in range(n)]
    ids = data.records.create_batch(items, priority=priority).item_ids
    queue_items(data, ids, pool, priority.stride, start)
    return ids


def _drain(pool: SlotPool, data: DataLayer, p: Pool = POOL, rounds: int = 100) -> list[str]:
    """Grant one slot at a time, finishing each granted item at once: the order slots go to items."""
    order: list[str] = []
    for _ in range(rounds):
        granted = pool.grant(p, 0.0).ids
        if not granted:
            break
        for item_id in granted:
            order.append(item_id)
            walk_to(data.records, item_id, ItemState.FAILED)
            pool.release(p.name, data.records.get_item(item_id))
    return order


def test_grant_goes_to_the_oldest_up_to_the_limit(data, pool) -> None:
    ids = _waiting(data, 8)
    assert pool.grant(POOL, 0.0).ids == ids[:5]
    assert pool.grant(POOL, 0.0).ids == []
    assert pool.in_use("default") == 5 and pool.queued("default") == 3


def test_enqueue_keeps_the_first_place(data, pool) -> None:
    ids = _waiting(data, 2)
    assert not pool.enqueue(POOL, data.records.get_item(ids[0]), 99, 1.0)
    assert pool.grant(Pool("default", "default", 1, POOL.project), 0.0).ids == [ids[0]]


def _validating(data: DataLayer, n: int) -> list[ReplicationItem]:
    """A batch of ``n`` items, each just validated (not queued yet), in the batch's order."""
    ids = data.records.create_batch(
        [NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default") for _ in range(n)]
    ).item_ids
    for item_id in ids:
        walk_to(data.records, item_id, ItemState.VALIDATING)
    return data.records.get_items(ids)


def _finish(data: DataLayer, item_ids: list[str]) -> None:
    for item_id in item_ids:
        walk_to(data.records, item_id, ItemState.FAILED)
        data.slots.release(POOL.name, data.records.get_item(item_id))


def test_a_batch_takes_slots_in_the_order_of_its_rows_however_they_were_validated(data, pool) -> None:
    """Issue 31: rows validated together (one transaction, one arrival time) or one by one, in any order, take
    slots row by row; a row validated late goes ahead of the later rows still waiting."""
    items = _validating(data, 12)
    rows = [item.id for item in items]
    together = [Queued(items[row], POOL, 0.5, {}) for row in (8, 0, 10, 5, 1, 7, 2, 6, 4)]
    assert data.wait_for_slots(together, now=1.0) == [True] * 9
    first = pool.grant(POOL, 1.0).ids
    assert first == [rows[r] for r in (0, 1, 2, 4, 5)]
    for arrival, row in enumerate((9, 3, 11), start=2):  # validated one by one, later
        assert data.wait_for_slot(items[row], Event.VALIDATED, POOL, 0.5, float(arrival)).ok
    _finish(data, first)
    assert _drain(pool, data) == [rows[r] for r in (3, 6, 7, 8, 9, 10, 11)]


def test_a_handed_back_item_keeps_its_rows_place(data, pool) -> None:
    ids = _waiting(data, 8)
    assert pool.grant(POOL, 0.0).ids == ids[:5]
    handed = data.records.get_item(ids[2])  # IMS said full for its copy
    walk_to(data.records, handed.id, ItemState.SUBMITTING)
    assert data.wait_for_slot(handed, Event.HAND_BACK, POOL, 0.5, 9.0, arrival=handed.queued_at).ok
    assert data.records.get_item(handed.id).queued_at == handed.queued_at
    _finish(data, [ids[0]])
    assert pool.grant(POOL, 9.0).ids == [ids[2], ids[5]]  # the two slots free: its own, and one after it


def test_a_record_stored_before_positions_queues_by_arrival(redis_server, data, pool) -> None:
    items = _validating(data, 3)
    raw = redis_server.client()
    for item in items:
        raw.hdel(data.keys.item(item.id), "position")
    old = data.records.get_items([item.id for item in items])
    assert [item.position for item in old] == [None] * 3
    for arrival, row in enumerate((2, 0, 1)):
        assert data.wait_for_slot(old[row], Event.VALIDATED, POOL, 0.5, float(arrival)).ok
    assert pool.grant(POOL, 3.0).ids == [old[row].id for row in (2, 0, 1)]


def test_cancelled_items_are_dropped_not_granted(data, store, pool) -> None:
    ids = _waiting(data, 4)
    walk_to(store, ids[0], ItemState.CANCELLED)
    walk_to(store, ids[2], ItemState.CANCELLED)
    assert pool.grant(POOL, 0.0).ids == [ids[1], ids[3]]
    assert pool.queued("default") == 0


def test_release_takes_an_item_out_of_line_or_frees_its_slot(data, store, pool) -> None:
    ids = _waiting(data, 3)
    one = Pool("default", "default", 1, POOL.project)
    assert pool.grant(one, 0.0).ids == [ids[0]]
    assert pool.release("default", store.get_item(ids[0]))
    assert not pool.release("default", store.get_item(ids[0]))
    assert not pool.release("default", store.get_item(ids[1]))  # it waited: out of line, no slot held
    assert pool.queued("default") == 1
    assert pool.grant(one, 0.0).ids == [ids[2]]


def test_a_batchs_items_in_each_line_are_counted_apart_from_other_batches(data, pool) -> None:
    other = Pool("other", "other", 2, "po")
    first = _waiting(data, 7)
    assert pool.grant(POOL, 0.0).ids == first[:5]  # granted: out of the line
    _waiting(data, 3)  # another batch in the same line
    batch_id = data.records.get_item(first[0]).batch_id
    assert pool.batch_queued(["default", "other"], batch_id) == {"default": 2, "other": 0}
    assert pool.batch_queued([other.name], "0" * 32) == {"other": 0}


def test_a_batch_behind_a_long_one_takes_the_next_slots_then_they_alternate(data, pool) -> None:
    long = _waiting(data, 20)
    assert pool.grant(POOL, 0.0).ids == long[:5]  # every slot busy with the long batch
    short = _waiting(data, 6, start=100.0)
    for item_id in long[:5]:  # its copies end one by one
        walk_to(data.records, item_id, ItemState.FAILED)
        pool.release("default", data.records.get_item(item_id))
    assert pool.grant(POOL, 0.0).ids == short[:5]  # the newcomer takes the slots that free up next
    for item_id in short[:5]:
        walk_to(data.records, item_id, ItemState.FAILED)
        pool.release("default", data.records.get_item(item_id))
    rest = _drain(pool, data, Pool("default", "default", 1, POOL.project))
    assert rest[:3] == [short[5], long[5], long[6]]  # then turns alternate until the newcomer is done
    assert rest[1:] == long[5:]


def test_priority_weighs_the_share(data, pool) -> None:
    low = _waiting(data, 30, priority=Priority.LOW)
    high = _waiting(data, 30, priority=Priority.HIGH)
    order = _drain(pool, data, Pool("default", "default", 1, POOL.project), rounds=40)
    # The first batch in line has its head start (one set of 5 slots at its weight: 4 turns before the other's
    # joins at a quarter of that)...
    assert set(order[:4]) <= set(low)
    shared = order[4:29]
    assert sum(i in high for i in shared) == 20 and sum(i in low for i in shared) == 5  # ...then four to one


def test_accounts_are_separate(data, pool) -> None:
    a, b = Pool("a", "a", 2, "pa"), Pool("b", "b", 2, "pb")
    ids_a, ids_b = _waiting(data, 3, a), _waiting(data, 3, b)
    assert pool.grant(a, 0.0).ids == ids_a[:2]
    assert pool.grant(b, 0.0).ids == ids_b[:2]
    assert pool.pools() >= {"a", "b"}
    assert pool.usage(["a", "b", "c"]) == {"a": (2, 1), "b": (2, 1), "c": (0, 0)}
    items = data.records.get_items([ids_a[0], ids_a[2], ids_b[1]])
    assert pool.holding([("a", items[0]), ("a", items[1]), ("b", items[2])]) == [True, False, True]


def test_ims_full_lowers_the_limit_and_probes_it_back_up(data, pool) -> None:
    ids = _waiting(data, 10)
    assert pool.grant(POOL, 0.0).ids == ids[:5]
    for item_id in ids[3:5]:  # IMS said full for two of them: two copies made elsewhere hold slots
        pool.release("default", data.records.get_item(item_id))
        wait = pool.lower_capacity("default", 0.0, first_raise=10.0, longest_raise=60.0)
    assert wait == 20.0 and pool.capacity("default").effective == 3
    assert pool.grant(POOL, 5.0).ids == []
    assert pool.grant(POOL, 20.5).ids == [ids[5]]  # one more tried after the raise interval...
    assert pool.grant(POOL, 21.0).ids == []  # ...and no other until the next one
    assert pool.grant(POOL, 41.0).ids == [ids[6]]
    assert pool.capacity("default").effective is None  # back to the configured limit


def test_the_image_quota_bounds_grants(data, pool) -> None:
    ids = _waiting(data, 6)
    pool.set_quota(POOL.project, quota=50, used=48, pending=0, now=0.0)
    assert pool.grant(POOL, 0.0).ids == ids[:2]
    assert pool.quota(POOL.project).headroom == 0 and pool.quota(POOL.project).blocked_since is None
    pool.set_quota(POOL.project, quota=50, used=50, pending=0, now=1.0)
    assert pool.quota(POOL.project).blocked_since == 1.0
    pool.set_quota(POOL.project, quota=60, used=50, pending=2, now=2.0)  # raised; two copies not yet counted
    assert pool.grant(POOL, 2.0).ids == ids[2:5]  # the slot limit bounds it now
    pool.exhaust_quota(POOL.project, 3.0)  # IMS refused a copy for the quota after all
    assert pool.quota(POOL.project).headroom == 0


def test_a_grant_waits_for_a_quota_reading_as_fresh_as_its_headroom_asks(data, pool) -> None:
    ids = _waiting(data, 3)
    age = QuotaAge(refresh=10.0, tight=20)
    first = pool.grant(POOL, 0.0, age)
    assert first.stale and first.ids == []  # never read: read before any grant
    pool.set_quota(POOL.project, quota=50, used=0, pending=0, now=0.0)  # room to spare
    assert pool.grant(POOL, 99.0, age).ids == ids
    assert pool.grant(POOL, 100.0, age).stale  # ten periods later
    pool.set_quota(POOL.project, quota=50, used=30, pending=0, now=100.0)  # 20 free: little
    assert not pool.grant(POOL, 109.0, age).stale
    assert pool.grant(POOL, 110.0, age).stale  # one period later
    assert not pool.grant(POOL, 110.0).stale  # without an age: with what it knows
    # Another region's project has no quota of ours: never stale.
    assert not pool.grant(Pool("x", "default", 5, None), 0.0, age).stale


def test_grants_made_while_the_quota_was_being_read_stay_pending(data, pool) -> None:
    ids = _waiting(data, 3)
    pool.set_quota(POOL.project, quota=50, used=40, pending=0, now=0.0)
    since = pool.quota(POOL.project).granted  # a read begins: nothing granted since the last one
    assert pool.grant(POOL, 1.0).ids == ids  # three grants while IMS answers
    # The read saw 1 copy not yet counted when it began; the 3 granted during it are not in IMS's figure either.
    pool.set_quota(POOL.project, quota=50, used=40, pending=1, now=2.0, granted_since=since)
    assert pool.quota(POOL.project).pending == 4 and pool.quota(POOL.project).headroom == 6


def test_reads_that_overlap_each_count_the_grants_made_during_them(data, pool) -> None:
    early = _waiting(data, 2)
    pool.set_quota(POOL.project, quota=50, used=40, pending=0, now=0.0)
    first = pool.quota(POOL.project).granted  # one step thread begins a read...
    assert pool.grant(POOL, 1.0).ids == early
    second = pool.quota(POOL.project).granted  # ...another begins one
    pool.set_quota(POOL.project, quota=50, used=40, pending=2, now=2.0, granted_since=second)  # it ends first
    late = _waiting(data, 3, start=10.0)
    assert pool.grant(POOL, 2.5).ids == late
    # The first read's IMS figure counted none of the five copies: all five stay pending (the second read's reset
    # of the pending count must not hide the three granted after it from the first).
    pool.set_quota(POOL.project, quota=50, used=40, pending=0, now=3.0, granted_since=first)
    assert pool.quota(POOL.project).pending == 5 and pool.quota(POOL.project).headroom == 5


def test_nothing_is_granted_while_the_account_circuit_is_open(data, pool) -> None:
    ids = _waiting(data, 2)
    policy = CircuitPolicy(failures_to_open=1, first_probe=0.2, longest_probe=1.0)
    data.accounts.record_outcome("default", "copy", "503", "transient", policy)
    assert pool.grant(POOL, 0.0).ids == []
    data.accounts.record_outcome("default", "quota", "200", "answer", policy)
    assert pool.grant(POOL, 0.0).ids == ids


def test_a_granted_item_is_due_at_once(data, pool) -> None:
    ids = _waiting(data, 1)
    assert data.records.overdue(before=100.0, limit=10) == []  # waiting in line: nothing of its own is due
    pool.grant(POOL, 50.0)
    assert [item_id for _, item_id in data.records.overdue(before=100.0, limit=10)] == ids


def test_concurrent_grants_never_exceed_the_limit(redis_server, data, store, pool, prefix) -> None:
    ids = _waiting(data, 60)
    granted: list[str] = []
    lock = threading.Lock()
    peak = 0

    def work() -> None:
        nonlocal peak
        mine = redis_server.data(prefix)
        for _ in range(40):
            got = mine.slots.grant(POOL, 0.0).ids
            with lock:
                granted.extend(got)
                peak = max(peak, mine.slots.in_use("default"))
            for item_id in got:  # finish the item, free its slot
                walk_to(mine.records, item_id, ItemState.FAILED)
                mine.slots.release("default", mine.records.get_item(item_id))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak <= 5
    assert sorted(granted) == sorted(ids)  # each item granted exactly once


def test_in_region_and_cross_region_pools_fill_apart(data, store, pool) -> None:
    """IMS counts cross-region copies apart from in-region ones: each pool has its own five."""
    cross_pool = Pool("default:cross-region", "default", 5, None)
    specs = [ItemSpec(image_id=str(uuid.uuid4()), target_region="cn-south-1") for _ in range(7)]
    cross = store.create_batch([NewItem(spec, "default") for spec in specs]).item_ids
    for arrival, item in enumerate(store.get_items(cross)):
        walk_to(store, item.id, ItemState.VALIDATING)
        assert data.wait_for_slot(item, Event.VALIDATED, cross_pool, 0.5, arrival).ok
    local = _waiting(data, 6)
    assert pool_name_of(store.get_item(cross[0])) == "default:cross-region"
    assert pool.grant(cross_pool, 100.0).ids == cross[:5]
    assert pool.grant(POOL, 100.0).ids == local[:5]
    items = store.get_items([cross[0], cross[6], local[0]])
    assert pool.holding(
        [("default:cross-region", items[0]), ("default:cross-region", items[1]), ("default", items[2])]
    ) == [True, False, True]
    assert pool.pools(["default"]) == {"default", "default:cross-region"}
    assert pool.release("default:cross-region", items[0]) and not pool.release("default", items[1])
    assert pool.queued("default") == 1 and pool.queued("default:cross-region") == 2
