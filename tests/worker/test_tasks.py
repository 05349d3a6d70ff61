"""The tasks' poison guard: an item whose step keeps killing workers fails with REDELIVERY_LIMIT; a step that Redis
cannot take the writes of keeps its message."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
import redis
from celery.exceptions import Reject

from config.settings import load_settings
from tests.support import walk_to
from worker import tasks
from worker.data import NewItem, NotReplicated
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName
from worker.runtime import build_context


def test_redeliveries_past_the_cap_fail_the_item_and_free_its_slot(redis_server) -> None:
    settings = load_settings(
        redis_url=redis_server.url,
        key_prefix=f"t{uuid.uuid4().hex[:8]}",
        demo=True,
        max_redeliveries=2,
        accounts={"default": {"project_id": "0" * 32, "access_key": "ak-test", "secret_key": "sk-test"}},
    )
    ctx = build_context(settings)
    records, slots = ctx.data.records, ctx.data.slots
    (item_id,) = records.create_batch([NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default")]).item_ids
    walk_to(records, item_id, ItemState.SUBMITTING)
    slots.restore("default", [item_id], now=1.0)

    assert not tasks._poisoned(ctx, "replication.submit", "message-1", item_id, item_id)
    assert not tasks._poisoned(ctx, "replication.submit", "message-1", item_id, item_id)
    assert not tasks._poisoned(ctx, "replication.poll", "message-2", item_id, item_id)  # counted per message
    assert tasks._poisoned(ctx, "replication.submit", "message-1", item_id, item_id)
    item = records.get_item(item_id)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.REDELIVERY_LIMIT
    assert slots.in_use("default") == 0


def _task(name: str = "replication.poll") -> SimpleNamespace:
    request = SimpleNamespace(kwargs={"item_id": "i-1", "seq": 3}, delivery_info={}, id="message-9")
    return SimpleNamespace(name=name, request=request)


def _fails_with(exc: Exception):
    def step(ctx):
        raise exc

    return step


def test_a_step_redis_refuses_hands_its_message_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "context", lambda: None)
    oom = redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'.")
    for refusal in (oom, redis.exceptions.ReadOnlyError("READONLY"), redis.ConnectionError("gone")):
        with pytest.raises(Reject) as rejected:
            tasks._run(_task(), "i-1", _fails_with(refusal), None)
        assert rejected.value.requeue  # back to its queue, or left unacked for the sweep: never dropped
    with pytest.raises(ValueError):  # a bug is not a refusal: it fails as before
        tasks._run(_task(), "i-1", _fails_with(ValueError("bug")), None)


def test_a_step_short_of_replicas_is_sent_again_later(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list = []
    ctx = SimpleNamespace(backoff=lambda attempt: 0.5)
    monkeypatch.setattr(tasks, "context", lambda: ctx)
    monkeypatch.setattr(tasks, "send", lambda to, nexts: sent.append((to, nexts)))  # send's own signature
    tasks._run(_task("replication.submit"), "i-1", _fails_with(NotReplicated(0, 1)), None)
    [(to, [again])] = sent
    assert to is ctx
    assert again.task is TaskName.SUBMIT and dict(again.kwargs) == {"item_id": "i-1", "seq": 3}
    assert again.countdown == 0.5
