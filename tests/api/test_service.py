"""The service layer without HTTP: storing, admitting, cancelling and retrying against a real Redis."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis

from api.enqueue import Enqueuer
from api.errors import InvalidRequest, NotFound, Unavailable
from api.principals import Principal
from api.service import ReplicationService
from cli.processes import free_port
from config.settings import Role
from tests.support import walk_to
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.pressure import REFUSALS
from worker.queues import TaskName

ROOT = Principal("root", Role.ADMIN, None)  # scopes and roles: tests/api/test_access.py


def _batch(n: int) -> dict:
    return {"items": [{"image_id": str(uuid.uuid4())} for _ in range(n)]}


def test_submit_stores_every_item_and_sends_one_admit_message(service, admits) -> None:
    stored = service.submit_batch(ROOT, _batch(3))
    summary = service.batch(ROOT, stored.batch_id)
    assert summary.total == 3 and summary.counts[ItemState.ACCEPTED] == 3
    [message] = admits(stored.batch_id)
    assert message["task"] == TaskName.ADMIT.value and message["kwargs"] == {"batch_id": stored.batch_id}


def test_invalid_batch_stores_nothing(service, redis_server) -> None:
    with pytest.raises(InvalidRequest):
        service.submit_batch(ROOT, {"items": [{"image_id": str(uuid.uuid4())}, {"image_id": "bad"}]})
    raw = redis.Redis.from_url(service.settings.redis_url, decode_responses=True)
    assert not raw.keys(f"{service.settings.key_prefix}:*")


def test_a_batch_whose_admit_message_cannot_be_stored_is_not_accepted(service, admits, caplog) -> None:
    dead_broker = service.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    enqueuer = Enqueuer(dead_broker)
    cut_off = ReplicationService(service.data, enqueuer, service.settings)
    raw = redis.Redis.from_url(service.settings.redis_url, decode_responses=True)
    before = set(raw.keys(f"{service.settings.key_prefix}:*"))
    REFUSALS.accepted()  # whatever an earlier test left: this one starts outside an episode
    with caplog.at_level(logging.WARNING, logger="imsrep.redis"), pytest.raises(Unavailable) as refused:
        for _ in range(3):  # three requests in one episode of the broker refusing
            with pytest.raises(Unavailable):
                cut_off.submit_batch(ROOT, _batch(2), key="retry-me")
        cut_off.submit_batch(ROOT, _batch(2), key="retry-me")
    enqueuer.close()
    assert refused.value.status_code == 503 and refused.value.headers == {"Retry-After": "5"}
    # Taken back: no batch, item or Idempotency-Key of it is left to run (the fence counter may have moved).
    assert set(raw.keys(f"{service.settings.key_prefix}:*")) - before <= {f"{service.settings.key_prefix}:fence"}
    assert caplog.text.count("Redis refuses writes") == 1  # one line per episode, not per request
    stored = service.submit_batch(ROOT, _batch(2), key="retry-me")  # the same key, once the broker takes messages
    assert service.batch(ROOT, stored.batch_id).total == 2 and admits(stored.batch_id)


def test_unknown_ids_are_not_found(service) -> None:
    for call in (service.batch, service.cancel, service.retry, service.replication):
        with pytest.raises(NotFound):
            call(ROOT, uuid.uuid4().hex)


def test_cancel_counts_each_kind_and_cancels_only_cancellable(service) -> None:
    store = service.records
    ids = service.submit_batch(ROOT, _batch(6)).item_ids
    v, w, s, r = ItemState.VALIDATING, ItemState.WAITING, ItemState.SUBMITTING, ItemState.REPLICATING
    walk_to(store, ids[1], v)
    walk_to(store, ids[2], w)
    walk_to(store, ids[3], s)
    walk_to(store, ids[4], r)
    walk_to(store, ids[5], ItemState.REJECTED, reason=ReasonCode.ISO_IMAGE)
    batch_id = store.get_item(ids[0]).batch_id
    counts = service.cancel(ROOT, batch_id)
    assert (counts.cancelled, counts.already_terminal, counts.not_cancellable_running) == (3, 1, 2)
    states = [store.get_item(i).state for i in ids]
    assert states == [ItemState.CANCELLED] * 3 + [s, r, ItemState.REJECTED]
    assert store.get_item(ids[0]).reason is ReasonCode.CANCELLED
    again = service.cancel(ROOT, batch_id)
    assert (again.cancelled, again.already_terminal, again.not_cancellable_running) == (0, 4, 2)


def test_retry_starts_a_new_attempt_for_failed_items_only(service, admits) -> None:
    store = service.records
    stored = service.submit_batch(ROOT, _batch(3))
    failed, rejected, _untouched = stored.item_ids
    walk_to(store, failed, ItemState.SUBMITTING, submit_started_at=1.0)
    walk_to(store, failed, ItemState.REPLICATING, job_id="job-1", progress=0.5, target_name="copy_x")
    walk_to(store, failed, ItemState.FAILED, reason=ReasonCode.IMS_JOB_FAILED, message="IMS said FAIL")
    walk_to(store, rejected, ItemState.REJECTED, reason=ReasonCode.ISO_IMAGE)

    assert service.retry(ROOT, stored.batch_id).retried == 1
    item = store.get_item(failed)
    assert item.state is ItemState.ACCEPTED and item.attempt == 2
    assert (item.reason, item.message, item.job_id, item.progress, item.target_name) == (None,) * 5
    assert store.get_item(rejected).state is ItemState.REJECTED
    assert [t.state for t in store.history(failed)][-2:] == [ItemState.FAILED, ItemState.ACCEPTED]
    assert len(admits(stored.batch_id)) == 2  # one at submission, one for the retry
    assert service.retry(ROOT, stored.batch_id).retried == 0
    assert len(admits(stored.batch_id)) == 2  # nothing retried, nothing sent
