"""The record store against a real Redis server: batches stored whole, items moved only by the table."""

from __future__ import annotations

import uuid

import pytest

from tests.support import walk_to
from worker.data import NewItem, RecordStore
from worker.data.records import FIRST_ROUND
from worker.domain.followups import Followups, TagsResult
from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import MOVES, Event, ItemState


@pytest.fixture
def store(redis_server) -> RecordStore:
    return redis_server.data().records


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
    assert store.batch_item_ids(stored.batch_id) == stored.item_ids
    assert [i.position for i in store.get_items(stored.item_ids)] == [0, 1, 2]  # its place in line (issue 31)


def test_receiver_items_join_their_batch_once_however_often_they_are_added(store: RecordStore) -> None:
    stored = store.create_batch(_items(1))
    (parent,) = store.get_items(stored.item_ids)
    fields = {"batch_id": stored.batch_id, "image_id": "shared", "parent_id": parent.id, "state": ItemState.ACCEPTED}
    children = [
        ReplicationItem(id=uuid.uuid4().hex, account=a, created_at=1.0, updated_at=1.0, **fields)
        for a in ("team-a", "team-b")
    ]
    assert store.add_children(stored.batch_id, children, now=2.0) == 2
    assert store.add_children(stored.batch_id, children, now=3.0) == 0  # a resend adds none twice
    summary = store.batch(stored.batch_id)
    assert summary.total == 3 and summary.counts[ItemState.ACCEPTED] == 3
    assert store.batch_item_ids(stored.batch_id) == [parent.id, *(c.id for c in children)]
    added = store.get_items([c.id for c in children])
    assert [(i.position, i.parent_id, i.account) for i in added] == [(1, parent.id, "team-a"), (2, parent.id, "team-b")]
    assert [t.state for t in store.history(children[0].id)] == [ItemState.ACCEPTED]


def test_tags_are_stored_and_read_back_as_a_mapping(store: RecordStore) -> None:
    tags = {"campaign": "rekey 2026", "owner": "db-team", "empty": ""}
    spec = ItemSpec(image_id=str(uuid.uuid4()), tags=tags)
    stored = store.create_batch([NewItem(spec, "default"), *_items(1)])
    tagged, plain = (store.get_item(i) for i in stored.item_ids)
    assert tagged is not None and tagged.tags == tags
    assert plain is not None and plain.tags is None


def test_move_changes_counts_index_and_history_together(store: RecordStore) -> None:
    stored = store.create_batch(_items(2))
    item = store.get_item(stored.item_ids[0])
    assert store.move(item, Event.START_VALIDATION).ok
    result = store.move(item, Event.REJECT, reason=ReasonCode.ISO_IMAGE, message="ISO images cannot be replicated")
    assert result.ok and result.previous is ItemState.VALIDATING
    item = store.get_item(item.id)
    assert item.state is ItemState.REJECTED and item.reason is ReasonCode.ISO_IMAGE
    summary = store.batch(stored.batch_id)
    assert summary.counts[ItemState.REJECTED] == 1 and summary.counts[ItemState.ACCEPTED] == 1
    assert summary.counts[ItemState.VALIDATING] == 0
    assert store.counts_by_state()[ItemState.REJECTED] == 1
    assert store.in_state(ItemState.VALIDATING, limit=10) == []
    log = store.history(item.id)
    assert [t.state for t in log] == [ItemState.ACCEPTED, ItemState.VALIDATING, ItemState.REJECTED]
    assert log[-1].reason is ReasonCode.ISO_IMAGE


def test_move_refused_from_a_wrong_state_or_for_a_missing_item(store: RecordStore) -> None:
    item = store.get_item(store.create_batch(_items(1)).item_ids[0])
    result = store.move(item, Event.SUCCEED)
    assert not result.ok and result.previous is ItemState.ACCEPTED
    assert store.get_item(item.id).state is ItemState.ACCEPTED
    missing = store.move(item.model_copy(update={"id": "nope"}), Event.START_VALIDATION)
    assert not missing.ok and missing.previous is None


@pytest.mark.parametrize("source", list(ItemState))
def test_every_state_pair_follows_the_table(store: RecordStore, source: ItemState) -> None:
    """For every (source, event): the script moves the item exactly when the table lists the source."""
    for event, move in MOVES.items():
        item = store.get_item(store.create_batch(_items(1)).item_ids[0])
        walk_to(store, item.id, source)
        result = store.move(item, event)
        assert result.ok == (source in move.sources), (source, event)
        assert result.previous is source
        assert store.get_item(item.id).state is (move.target if result.ok else source)


def test_update_if_only_in_expected_state(store: RecordStore) -> None:
    item_id = store.create_batch(_items(1)).item_ids[0]
    assert not store.update_if(item_id, ItemState.REPLICATING, progress=0.5)
    assert store.update_if(item_id, ItemState.ACCEPTED, progress=0.25)
    assert store.get_item(item_id).progress == 0.25


def test_claim_poll_lets_one_of_two_polls_go_on(store: RecordStore) -> None:
    item_id = store.create_batch(_items(1)).item_ids[0]
    assert not store.claim_poll(item_id, 0, now=1.0)  # not replicating
    walk_to(store, item_id, ItemState.REPLICATING, poll_seq=0)
    assert store.claim_poll(item_id, 0, now=2.0)
    assert not store.claim_poll(item_id, 0, now=3.0)
    assert store.get_item(item_id).poll_seq == 1


def test_due_times_follow_moves_messages_and_running_steps(store: RecordStore) -> None:
    ids = store.create_batch(_items(3), now=100.0).item_ids
    assert store.overdue(before=1e12, limit=10) == []  # accepted: their batch's admit chain is what is due
    assert store.overdue_admits(before=200.0, limit=10) == [(store.get_item(ids[0]).batch_id, 0)]
    walk_to(store, ids[0], ItemState.VALIDATING)  # a step took it: due now
    walk_to(store, ids[1], ItemState.WAITING)  # in line for a slot: nothing of its own is due
    store.set_due({ids[2]: 500.0})
    overdue = store.overdue(before=1e12, limit=10)
    assert [item_id for _, item_id in overdue] == [ids[2], ids[0]]  # most overdue first
    store.mark_running(ids[0], until=2e12)  # its step runs until then
    store.mark_running(ids[1], until=2e12)  # not due at all: left out
    assert [item_id for _, item_id in store.overdue(before=1e12, limit=10)] == [ids[2]]
    walk_to(store, ids[2], ItemState.CANCELLED)  # finished: nothing more is due
    store.forget_due([ids[0]])
    assert store.overdue(before=3e12, limit=10) == []


def test_an_admit_chain_records_its_progress(store: RecordStore) -> None:
    batch_id = store.create_batch(_items(2), now=100.0).batch_id
    store.admit_progress(batch_id, 500, due=300.0)
    assert store.overdue_admits(before=200.0, limit=10) == []
    assert store.overdue_admits(before=400.0, limit=10) == [(batch_id, 500)]
    store.admit_done(batch_id)
    assert store.overdue_admits(before=400.0, limit=10) == []


def test_an_admit_chain_takes_every_accounts_first_items_then_the_rest_account_by_account(store: RecordStore) -> None:
    accounts = ["b", "a", "c"] * (FIRST_ROUND + 2) + ["a"]  # interleaved, as a batch over many projects often is
    items = [NewItem(ItemSpec(image_id=str(uuid.uuid4())), account) for account in accounts]
    stored = store.create_batch(items)
    order = store.admission_ids(stored.batch_id, 0, 4) + store.admission_ids(stored.batch_id, 5, 100)
    assert sorted(order) == sorted(stored.item_ids)
    firsts = ["b"] * FIRST_ROUND + ["a"] * FIRST_ROUND + ["c"] * FIRST_ROUND  # accounts as they first appear
    assert [store.get_item(i).account for i in order] == firsts + ["b"] * 2 + ["a"] * 3 + ["c"] * 2
    given = [item_id for item_id, account in zip(stored.item_ids, accounts, strict=True) if account == "a"]
    assert [i for i in order if store.get_item(i).account == "a"] == given  # each account's items as given
    assert store.batch_item_ids(stored.batch_id) == stored.item_ids  # the batch's own order stays as submitted
    store.admit_done(stored.batch_id)  # the grouped list lasts only while the batch is admitted
    assert store.admission_ids(stored.batch_id, 0, -1) == stored.item_ids

    single = store.create_batch(_items(3))
    assert store.admission_ids(single.batch_id, 0, -1) == single.item_ids


def test_batch_items_pages_with_state_filter(store: RecordStore) -> None:
    stored = store.create_batch(_items(7))
    for item_id in stored.item_ids[::2]:
        walk_to(store, item_id, ItemState.CANCELLED)
    page, cursor = store.batch_items(stored.batch_id, limit=3)
    assert [i.id for i in page] == stored.item_ids[:3] and cursor == 3
    cancelled, cursor = store.batch_items(stored.batch_id, state=ItemState.CANCELLED, limit=2)
    assert [i.id for i in cancelled] == stored.item_ids[0:4:2] and cursor is not None
    rest, cursor = store.batch_items(stored.batch_id, state=ItemState.CANCELLED, limit=10, cursor=cursor)
    assert [i.id for i in rest] == stored.item_ids[4::2] and cursor is None


def test_lists_objects_and_follow_ups_round_trip_as_json(store: RecordStore) -> None:
    spec = ItemSpec(
        image_id=str(uuid.uuid4()),
        target_region="cn-south-1",
        share_with=["0123456789abcdef0123456789abcdef"],
        tags={"team": "web", "empty": ""},
        provenance=False,
    )
    item_id = store.create_batch([NewItem(spec, "default")]).item_ids[0]
    item = store.get_item(item_id)
    assert item.share_with == spec.share_with and item.tags == spec.tags and item.provenance is False
    assert item.mode == "cross-region" and item.destination_project == "cn-south-1"
    followups = Followups(started_at=5.0, tags=TagsResult(wanted={"team": "web"}, applied={"team": "web"}))
    walk_to(store, item_id, ItemState.FINISHING, followups=followups, new_image_id="new")
    item = store.get_item(item_id)
    assert item.state is ItemState.FINISHING and item.followups == followups
    assert store.claim_poll(item_id, 0, now=6.0, state=ItemState.FINISHING)
    assert not store.claim_poll(item_id, 0, now=7.0, state=ItemState.FINISHING)
    assert not store.move(item, Event.FAIL).ok and not store.move(item, Event.CANCEL).ok
    assert store.move(item, Event.SUCCEED, reason=ReasonCode.TAGS_NOT_APPLIED, message="m").ok
    assert store.get_item(item_id).reason is ReasonCode.TAGS_NOT_APPLIED
