"""The tasks' poison guard: an item whose step keeps killing workers fails with REDELIVERY_LIMIT; a step that Redis
cannot take the writes of keeps its message."""

from __future__ import annotations

import contextlib
import uuid
from types import SimpleNamespace

import pytest
import redis
from celery.exceptions import Reject, SoftTimeLimitExceeded

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


# -- bundles: one message, several items' steps (worker.steps.bundles) ------------------------------------------


class _Records:
    def __init__(self) -> None:
        self.running: list[str] = []

    def mark_running(self, *item_ids: str, until: float) -> None:
        self.running += item_ids

    def set_due(self, dues: dict[str, float]) -> None:
        self.running += dues


def _bundle_ctx(monkeypatch: pytest.MonkeyPatch) -> tuple[SimpleNamespace, list]:
    settings = SimpleNamespace(task_time_limit=90.0, task_soft_time_limit=60.0)
    ctx = SimpleNamespace(data=SimpleNamespace(records=_Records()), settings=settings, clock=lambda: 0.0)
    ctx.backoff = lambda attempt: 0.5
    sent: list = []
    monkeypatch.setattr(tasks, "context", lambda: ctx)
    monkeypatch.setattr(tasks, "send", lambda to, nexts, bundled=True: sent.append((nexts, bundled)))
    return ctx, sent


def _bundle_task(redelivered: bool = False) -> SimpleNamespace:
    items = [{"item_id": f"i-{n}", "image_id": f"img-{n}", "seq": n} for n in range(3)]
    request = SimpleNamespace(kwargs={"bundle": items}, delivery_info={"redelivered": redelivered}, id="message-b")
    return SimpleNamespace(name="replication.poll", request=request)


def test_a_bundle_runs_every_items_step_and_sends_what_they_asked_for_together(monkeypatch) -> None:
    ctx, sent = _bundle_ctx(monkeypatch)
    ran: list = []

    def step(_ctx, kwargs):
        ran.append((kwargs["item_id"], kwargs["seq"]))
        return [tasks.Next(TaskName.POLL, {"item_id": kwargs["item_id"], "seq": kwargs["seq"] + 1}, 5.0)]

    tasks._run_parts(_bundle_task(), tasks._items(_bundle_task(), step))
    assert ran == [("i-0", 0), ("i-1", 1), ("i-2", 2)]
    assert ctx.data.records.running == ["i-0", "i-1", "i-2"]
    [(nexts, bundled)] = sent  # one send: the next polls can go as one message again
    assert bundled and [dict(n.kwargs) for n in nexts] == [{"item_id": f"i-{n}", "seq": n + 1} for n in range(3)]


def test_a_redelivered_bundle_goes_on_as_a_message_per_item(monkeypatch) -> None:
    # Its worker died holding it: were one item's step the killer, a bundle would take the others down with it.
    _, sent = _bundle_ctx(monkeypatch)
    task = _bundle_task(redelivered=True)
    tasks._run_parts(task, tasks._items(task, lambda ctx, kwargs: pytest.fail("no step runs before the split")))
    [(messages, bundled)] = sent
    assert not bundled
    assert [dict(m.kwargs) for m in messages] == [
        {"item_id": f"i-{n}", "image_id": f"img-{n}", "seq": n, "redelivered": 1} for n in range(3)
    ]  # a poll keeps its right to take over its chain


def test_a_bundle_stuck_past_the_soft_limit_sends_its_unfinished_items_again(monkeypatch) -> None:
    _, sent = _bundle_ctx(monkeypatch)
    done = tasks.Next(TaskName.POLL, {"item_id": "i-0", "seq": 1}, 5.0)

    def step(_ctx, kwargs):
        if kwargs["item_id"] == "i-1":
            raise SoftTimeLimitExceeded()
        return [done]

    task = _bundle_task()
    tasks._run_parts(task, tasks._items(task, step))
    [(nexts, _)] = sent
    assert nexts[0] == done
    assert [(dict(n.kwargs)["item_id"], n.countdown) for n in nexts[1:]] == [("i-1", 0.5), ("i-2", 0.5)]


def test_a_poll_that_hands_its_slot_on_runs_the_submit_itself(monkeypatch) -> None:
    # The submit of a freed slot, sent as a message, waited behind every poll due meanwhile, and the slot with it.
    ctx, sent = _bundle_ctx(monkeypatch)
    submitted: list[str] = []
    polled_next = tasks.Next(TaskName.POLL, {"item_id": "copy-2", "seq": 4}, 30.0)
    monkeypatch.setattr(
        tasks.steps, "submit", lambda _ctx, item_id: submitted.append(item_id) or [polled_next] * (item_id == "w-2")
    )

    def step(_ctx, kwargs):  # each poll saw its job end and handed its slot to a waiting item
        return [tasks.Next(TaskName.SUBMIT, {"item_id": f"w-{kwargs['seq']}", "image_id": "x"})]

    task = _bundle_task()
    tasks._run_parts(task, tasks._items(task, step))
    assert submitted == ["w-0", "w-1", "w-2"]
    assert ctx.data.records.running == ["i-0", "i-1", "i-2", "w-0", "w-1", "w-2"]  # all due by this task's limit
    [(nexts, _)] = sent
    assert nexts == [polled_next]  # the submits ran here; what they asked for is sent

    sent.clear()
    submitted.clear()
    task.name = TaskName.SUBMIT.value  # a submit's own retry is a message, as is an admit chunk's lot of grants
    tasks._run_parts(task, tasks._items(task, step))
    assert not submitted and [len(n.kwargs) for n in sent[0][0]] == [2, 2, 2]


def test_a_countdown_runs_from_when_its_step_asked_not_from_when_the_task_sends_it(monkeypatch) -> None:
    # A bundle sends after its last item: the first item's poll, asked for 0.3 s before, is due 0.3 s sooner.
    sent: list = []
    monkeypatch.setattr(tasks.steps, "expect", lambda ctx, nexts: None)
    monkeypatch.setattr(tasks.app, "producer_or_acquire", contextlib.nullcontext)
    monkeypatch.setattr(tasks.app, "send_task", lambda name, kwargs, countdown, **_: sent.append((name, countdown)))
    early = tasks.Next(TaskName.TAG, {"item_id": "i-0", "seq": 1}, 2.0)
    late = tasks.Next(TaskName.TAG, {"item_id": "i-1", "seq": 1}, 0.2)
    monkeypatch.setattr(tasks.time, "monotonic", lambda: early.asked + 0.3)
    tasks.send(SimpleNamespace(), [early, late])
    assert sent[0][0] == TaskName.TAG.value and sent[0][1] == pytest.approx(1.7)
    assert sent[1][1] is None  # its time has come: no countdown at all
