"""Batches over their life against a real Redis: listed newest first by label and state, deleted only when
finished (atomically against a retry), and nothing else touched."""

from __future__ import annotations

import uuid

import pytest

from tests.support import walk_to
from worker.data import DataLayer, Deleted, NewItem
from worker.domain.spec import ItemSpec
from worker.domain.states import Event, ItemState


@pytest.fixture
def data(redis_server) -> DataLayer:
    return redis_server.data()


def _batch(data: DataLayer, n: int = 2, *, label: str | None = None, now: float | None = None) -> list[str]:
    items = [NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default") for _ in range(n)]
    return data.records.create_batch(items, now, label=label).item_ids


def _batch_of(data: DataLayer, item_ids: list[str]) -> str:
    return data.records.get_item(item_ids[0]).batch_id


def _finish(data: DataLayer, item_ids: list[str], state: ItemState = ItemState.SUCCEEDED) -> None:
    for item_id in item_ids:
        walk_to(data.records, item_id, state)


def test_pages_are_newest_first_and_follow_the_cursor(data: DataLayer) -> None:
    made = [_batch_of(data, _batch(data, 1, now=1000.0 + i)) for i in range(7)]
    seen, cursor = [], None
    while True:
        page = data.lifecycle.page(limit=3, cursor=cursor)
        seen += [b.batch_id for b in page.batches]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == made[::-1]


def test_filters_by_label_and_state(data: DataLayer) -> None:
    label = f"l-{uuid.uuid4().hex[:6]}"
    done = _batch(data, label=label)
    running = _batch(data, label=label)
    _batch(data, label="other-label")
    _finish(data, done)
    by_label = data.lifecycle.page(limit=10, label=label)
    assert [b.batch_id for b in by_label.batches] == [_batch_of(data, running), _batch_of(data, done)]
    assert {b.label for b in by_label.batches} == {label}
    finished = data.lifecycle.page(limit=10, label=label, state="finished")
    assert [(b.batch_id, b.state) for b in finished.batches] == [(_batch_of(data, done), "finished")]
    assert [b.state for b in data.lifecycle.page(limit=10, label=label, state="running").batches] == ["running"]


def test_delete_removes_a_finished_batch_with_every_key_and_nothing_else(data: DataLayer, redis_server) -> None:
    label = f"gone-{uuid.uuid4().hex[:6]}"
    doomed = _batch(data, 3, label=label)
    kept = _batch(data, 2, label=label)
    _finish(data, doomed[:1], ItemState.SUCCEEDED)
    _finish(data, doomed[1:2], ItemState.REJECTED)
    _finish(data, doomed[2:], ItemState.CANCELLED)
    _finish(data, kept[:1])
    r = redis_server.client()
    prefix = data.records._keys.prefix
    before = set(r.keys(f"{prefix}:*"))
    batch_id = _batch_of(data, doomed)

    assert data.lifecycle.delete(batch_id) is Deleted.DELETED
    after = set(r.keys(f"{prefix}:*"))
    gone = {key for key in before - after if batch_id not in key and not any(i in key for i in doomed)}
    assert gone <= {f"{prefix}:state:rejected", f"{prefix}:state:cancelled", f"{prefix}:due"}  # it alone was in
    assert not [key for key in after if batch_id in key or any(i in key for i in doomed)]
    zsets = [f"{prefix}:batches", f"{prefix}:label:{label}", f"{prefix}:due", f"{prefix}:admitting"]
    for name in r.keys(f"{prefix}:state:*") + zsets:
        assert not set(r.zrange(name, 0, -1)) & {batch_id, *doomed}
    assert data.records.batch(_batch_of(data, kept)) is not None
    assert [data.records.get_item(i).state for i in kept] == [ItemState.SUCCEEDED, ItemState.ACCEPTED]
    assert data.lifecycle.delete(batch_id) is Deleted.MISSING


def test_a_batch_with_any_item_not_terminal_is_not_deleted(data: DataLayer) -> None:
    ids = _batch(data, 2)
    _finish(data, ids[:1])
    walk_to(data.records, ids[1], ItemState.REPLICATING)
    assert data.lifecycle.delete(_batch_of(data, ids)) is Deleted.NOT_FINISHED
    assert data.records.get_item(ids[1]).state is ItemState.REPLICATING


def test_a_retry_after_the_check_makes_the_delete_look_again(data: DataLayer, monkeypatch) -> None:
    """The delete watches the batch's counts: a retry between its check and its transaction wins."""
    ids = _batch(data, 1)
    _finish(data, ids, ItemState.FAILED)
    batch_id = _batch_of(data, ids)
    original = data.lifecycle._delete
    raced = []

    def retry_first(pipe, summary, item_ids):
        if not raced:
            raced.append(data.records.move(data.records.get_item(ids[0]), Event.RETRY).ok)
        original(pipe, summary, item_ids)

    monkeypatch.setattr(data.lifecycle, "_delete", retry_first)
    assert data.lifecycle.delete(batch_id) is Deleted.NOT_FINISHED
    assert raced == [True] and data.records.get_item(ids[0]).state is ItemState.ACCEPTED


def _end(data: DataLayer, item_id: str, event: Event, now: float) -> None:
    walk_to(data.records, item_id, ItemState.VALIDATING)
    assert data.records.move(data.records.get_item(item_id), event, now=now).ok


def test_a_batch_is_finished_at_its_last_items_end_and_running_again_after_a_retry(data: DataLayer) -> None:
    ids = _batch(data, 2)
    batch_id = _batch_of(data, ids)
    _end(data, ids[0], Event.FAIL, 1000.0)
    assert data.records.batch(batch_id).finished_at is None  # the other item is still accepted
    _end(data, ids[1], Event.REJECT, 1005.0)
    assert data.records.batch(batch_id).finished_at == 1005.0
    assert data.records.move(data.records.get_item(ids[0]), Event.RETRY, now=1010.0).ok
    assert data.records.batch(batch_id).finished_at is None
    _end(data, ids[0], Event.FAIL, 1020.0)
    assert data.records.batch(batch_id).finished_at == 1020.0


def test_a_selection_ends_its_batch_when_every_item_has_ended(data: DataLayer) -> None:
    def selecting() -> tuple[str, str]:
        own = [NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default")]
        stored = data.records.create_batch(own, 900.0, selection={"selector": {}, "template": {}})
        _end(data, stored.item_ids[0], Event.REJECT, 1000.0)
        assert data.records.batch(stored.batch_id).finished_at is None  # its selector may still add items
        return stored.batch_id, stored.item_ids[0]

    listed, _ = selecting()
    status, created = data.selections.add_page(listed, "", [], next_marker="", listed=0, matched=0, last=True,
                                               now=1010.0)  # fmt: skip
    assert (status, created) == ("ok", 0) and data.records.batch(listed).finished_at == 1010.0
    stopped, _ = selecting()
    assert data.selections.stop(stopped, "failed", "listing failed", now=1020.0)
    assert data.records.batch(stopped).finished_at == 1020.0


def test_note_finished_records_when_a_batch_ended_before_its_moves_kept_it(data: DataLayer, redis_server) -> None:
    ids = _batch(data, 2)
    batch_id = _batch_of(data, ids)
    assert data.lifecycle.note_finished(data.records.batch(batch_id)) is None
    _finish(data, ids, ItemState.FAILED)
    redis_server.client().hdel(data.keys.batch(batch_id), "finished_at")  # as an earlier version left it
    last = max(data.records.get_item(i).updated_at for i in ids)
    assert data.lifecycle.note_finished(data.records.batch(batch_id)) == last
    assert data.records.batch(batch_id).finished_at == last
    assert data.records.move(data.records.get_item(ids[0]), Event.RETRY).ok
    assert data.lifecycle.note_finished(data.records.batch(batch_id)) is None
    assert data.records.batch(batch_id).finished_at is None
