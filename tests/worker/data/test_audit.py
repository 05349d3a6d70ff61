"""The audit trail's store against a real Redis: newest first with filters and a cursor, trimmed by its own retention
time, and left alone when its batch is deleted or expired by the batch retention sweep."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest

from config.settings import load_settings
from tests.support import walk_to
from worker.data import AuditRecord, DataLayer, Deleted, NewItem
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.steps.retention import DAY, expire_batches

YEAR = 365 * DAY


@pytest.fixture
def data(redis_server) -> DataLayer:
    return redis_server.data()


def _record(**fields: object) -> AuditRecord:
    values: dict = {
        "time": "2026-01-01T00:00:00.000+00:00",
        "request_id": uuid.uuid4().hex,
        "principal": "alice",
        "source": "127.0.0.1",
        "method": "POST",
        "path": "/v1/batches",
        "action": "batch.submit",
        "outcome": "ok",
        "status": 202,
    }
    return AuditRecord(**{**values, **fields})


def _append(data: DataLayer, record: AuditRecord, now: float | None = None) -> str:
    return data.audit.append(record, keep_seconds=YEAR, now=time.time() if now is None else now)


def test_records_come_back_newest_first_as_written_a_page_at_a_time(data: DataLayer) -> None:
    written = [_record(items=n, accounts=["prod"], share_targets=["a" * 32]) for n in range(7)]
    ids = [_append(data, record) for record in written]
    seen, cursor = [], None
    while True:
        page = data.audit.page(limit=3, cursor=cursor)
        seen += page.records
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [r.id for r in seen] == ids[::-1]
    assert [r.items for r in seen] == list(range(7))[::-1]
    assert seen[0].accounts == ["prod"] and seen[0].share_targets == ["a" * 32] and seen[0].principal == "alice"


def test_a_filter_keeps_its_records_across_pages_and_a_scan_limit_ends_a_page_early(data: DataLayer) -> None:
    for n in range(6):
        _append(data, _record(principal="bob" if n % 3 == 0 else "alice", items=n))
    bob = data.audit.page(limit=1, match=lambda r: r.principal == "bob")
    assert [r.items for r in bob.records] == [3] and bob.next_cursor is not None
    rest = data.audit.page(limit=5, cursor=bob.next_cursor, match=lambda r: r.principal == "bob")
    assert [r.items for r in rest.records] == [0] and rest.next_cursor is None
    short = data.audit.page(limit=5, match=lambda r: r.principal == "bob", scan_limit=2)
    assert short.records == [] and short.next_cursor is not None  # two alices looked at; go on from there
    after = data.audit.page(limit=5, cursor=short.next_cursor, match=lambda r: r.principal == "bob")
    assert [r.items for r in after.records] == [3, 0]


def test_since_and_until_bound_the_time_stored(data: DataLayer) -> None:
    _append(data, _record(items=1))
    middle = _append(data, _record(items=2))
    _append(data, _record(items=3))
    at = int(middle.split("-")[0]) / 1000  # Redis's clock, in milliseconds
    assert 2 in {r.items for r in data.audit.page(limit=10, since=at - 0.0004, until=at + 0.0004).records}
    assert all(r.items != 2 for r in data.audit.page(limit=10, until=at - 0.001).records)
    assert all(r.items != 2 for r in data.audit.page(limit=10, since=at + 0.001).records)


def test_records_older_than_the_retention_time_are_trimmed_as_records_are_added(redis_server, data: DataLayer) -> None:
    old = redis_server.client().xadd(data.keys.audit(), {"record": _record(items=1).to_json()}, id="1000-0")
    kept = _append(data, _record(items=2))
    assert [r.id for r in data.audit.page(limit=10).records] == [kept]
    assert old not in {r.id for r in data.audit.page(limit=10).records}


def test_a_record_outlives_the_deletion_and_the_expiry_of_its_batch(data: DataLayer) -> None:
    def finished_batch() -> str:
        stored = data.records.create_batch([NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default")])
        walk_to(data.records, stored.item_ids[0], ItemState.SUCCEEDED)
        return stored.batch_id

    deleted, expired = finished_batch(), finished_batch()
    for batch_id in (deleted, expired):
        _append(data, _record(batch_id=batch_id))
    assert data.lifecycle.delete(deleted) is Deleted.DELETED

    # The batch retention sweep, its clock past retention_days: the batch goes, its audit record stays.
    settings = load_settings(retention_days=1)
    sweep = SimpleNamespace(settings=settings, data=data, clock=time.time)
    expire_batches(sweep)  # notes when the batch ended
    sweep.clock = lambda: time.time() + 2 * DAY
    expire_batches(sweep)
    assert data.records.batch(expired) is None and data.records.batch(deleted) is None
    assert {r.batch_id for r in data.audit.page(limit=10).records} == {deleted, expired}
