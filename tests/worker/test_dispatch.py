"""How a step runs (worker.dispatch): each middleware alone, around fake steps, and the whole chain's order."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery.exceptions import SoftTimeLimitExceeded

from config.settings import load_settings
from tests.support import walk_to
from worker import dispatch
from worker.behind import Behind
from worker.call import Call, HandBack, Message, Part, parts
from worker.data import NewItem, NotReplicated
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.ims.roundtrip import RoundTrip
from worker.queues import TaskName
from worker.registry import STEPS
from worker.runtime import build_context
from worker.steps import Next
from worker.steps.context import hand_on_now


class _Records:
    def __init__(self) -> None:
        self.running: list[str] = []

    def mark_running(self, *item_ids: str, until: float) -> None:
        self.running += item_ids

    def set_due(self, dues: dict[str, float]) -> None:
        self.running += dues


def _ctx() -> SimpleNamespace:
    settings = SimpleNamespace(task_time_limit=90.0, task_soft_time_limit=60.0)
    data = SimpleNamespace(records=_Records(), steps_sent=lambda dues: None, flush=lambda: None)
    return SimpleNamespace(
        data=data,
        settings=settings,
        clock=lambda: 0.0,
        backoff=lambda attempt: 0.5,
        parallel=None,
        round_trip=RoundTrip(),
        behind=None,
    )


def _bundle(task: TaskName = TaskName.POLL, redelivered: bool = False) -> Message:
    chain = task is TaskName.POLL
    items = [{"item_id": f"i-{n}", "image_id": f"img-{n}", **({"seq": n} if chain else {})} for n in range(3)]
    return Message(task, {"bundle": items}, "m-b", redelivered)


def _call(message: Message, run: Any = None, ctx: Any = None) -> tuple[Call, list[list[Next]]]:
    """A call whose parts run ``run(ctx, args)`` instead of their steps; what it publishes is recorded."""
    published: list[list[Next]] = []
    found = parts(message)
    if run is not None:
        found = [dataclasses.replace(p, step=dataclasses.replace(p.step, run=run)) for p in found]
    return Call(ctx or _ctx(), message, published.append, found), published


def _fails_with(exc: Exception):
    def inner(call: Call) -> None:
        raise exc

    return inner


def test_a_step_redis_refuses_hands_its_message_back() -> None:
    oom = redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'.")
    for refusal in (oom, redis.exceptions.ReadOnlyError("READONLY"), redis.ConnectionError("gone")):
        call, _ = _call(Message(TaskName.POLL, {"item_id": "i-1", "seq": 3}))
        with pytest.raises(HandBack):  # back to its queue, or left unacked for the sweep: never dropped
            dispatch.keep_when_redis_refuses(call, _fails_with(refusal))
    with pytest.raises(ValueError):  # a bug is not a refusal: it fails as before
        dispatch.keep_when_redis_refuses(call, _fails_with(ValueError("bug")))


def test_a_step_short_of_replicas_is_sent_again_later() -> None:
    call, published = _call(Message(TaskName.SUBMIT, {"item_id": "i-1", "image_id": "img"}))
    dispatch.keep_when_redis_refuses(call, _fails_with(NotReplicated(0, 1)))
    [[again]] = published
    assert again.task is TaskName.SUBMIT and dict(again.kwargs) == {"item_id": "i-1", "image_id": "img"}
    assert again.countdown == pytest.approx(0.5, abs=0.01)


def test_an_exclusive_step_runs_once_at_a_time(redis_server) -> None:
    ctx = build_context(load_settings(redis_url=redis_server.url, key_prefix=f"t{uuid.uuid4().hex[:8]}", demo=True))
    ran: list[str] = []
    inner_call, _ = _call(Message(TaskName.RECONCILE, {}), ctx=ctx)
    dispatch.one_at_a_time(inner_call, lambda call: dispatch.one_at_a_time(call, lambda _: ran.append("inner")))
    assert ran == []  # the outer run holds the lock: the nested one is skipped
    dispatch.one_at_a_time(inner_call, lambda _: ran.append("alone"))
    assert ran == ["alone"]  # and the lock was released after it
    other, _ = _call(Message(TaskName.EXPIRE_BATCHES, {}), ctx=ctx)  # not exclusive: no lock at all
    dispatch.one_at_a_time(other, lambda call: dispatch.one_at_a_time(call, lambda _: ran.append("nested")))
    assert ran == ["alone", "nested"]


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

    ran: list[str] = []

    def deliver(task: TaskName, message_id: str) -> None:
        call, _ = _call(Message(task, {"item_id": item_id}, message_id, redelivered=True), ctx=ctx)
        dispatch.poison_guard(call, lambda c: ran.append(message_id))

    deliver(TaskName.SUBMIT, "message-1")
    deliver(TaskName.SUBMIT, "message-1")
    deliver(TaskName.POLL, "message-2")  # counted per message
    assert ran == ["message-1", "message-1", "message-2"]
    deliver(TaskName.SUBMIT, "message-1")
    assert ran == ["message-1", "message-1", "message-2"]  # the third delivery does not run
    item = records.get_item(item_id)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.REDELIVERY_LIMIT
    assert slots.in_use("default") == 0


def test_a_bundle_runs_every_items_step_and_sends_what_they_asked_for_together() -> None:
    ran: list = []

    def step(_ctx, args):
        ran.append((args.item_id, args.seq))
        return [Next(TaskName.POLL, {"item_id": args.item_id, "seq": args.seq + 1}, 5.0)]

    call, published = _call(_bundle(), step)
    dispatch.compose(dispatch.MIDDLEWARE[1:])(call)  # all but the lock, which needs Redis
    assert ran == [("i-0", 0), ("i-1", 1), ("i-2", 2)]
    assert call.ctx.data.records.running == ["i-0", "i-1", "i-2"]
    [[message]] = published  # one send: the next polls go as one message again
    assert message.kwargs == {"bundle": [{"item_id": f"i-{n}", "seq": n + 1} for n in range(3)]}


def test_a_redelivered_bundle_goes_on_as_a_message_per_item() -> None:
    # Its worker died holding it: were one item's step the killer, a bundle would take the others down with it.
    call, published = _call(_bundle(redelivered=True), lambda ctx, args: pytest.fail("no step runs before the split"))
    dispatch.poison_guard(call, dispatch.run_parts)
    [messages] = published
    assert [dict(m.kwargs) for m in messages] == [
        {"item_id": f"i-{n}", "image_id": f"img-{n}", "seq": n, "redelivered": 1} for n in range(3)
    ]  # one message each, and a poll keeps its right to take over its chain
    assert parts(Message(TaskName.POLL, messages[0].kwargs))[0].args.redelivered


def test_a_bundle_stuck_past_the_soft_limit_sends_its_unfinished_items_again() -> None:
    done = Next(TaskName.POLL, {"item_id": "i-0", "seq": 1}, 5.0)

    def step(_ctx, args):
        if args.item_id == "i-1":
            raise SoftTimeLimitExceeded()
        return [done]

    call, _ = _call(_bundle(), step)
    dispatch.resend_past_soft_limit(call, dispatch.run_parts)
    assert call.nexts[0] == done
    assert [(n.kwargs["item_id"], n.countdown) for n in call.nexts[1:]] == [("i-1", 0.5), ("i-2", 0.5)]
    assert not call.pending


def test_a_slow_bundle_sends_the_rest_in_a_message_of_its_own() -> None:
    call, _ = _call(_bundle(), lambda ctx, args: [])
    call.started -= call.ctx.settings.task_soft_time_limit  # half the soft limit is long gone
    dispatch.run_parts(call)
    assert [n.kwargs["item_id"] for n in call.nexts] == ["i-1", "i-2"]  # the first ran: something must


def test_a_poll_that_hands_its_slot_on_runs_the_submit_itself(monkeypatch) -> None:
    # The submit of a freed slot, sent as a message, waited behind every poll due meanwhile, and the slot with it.
    submitted: list[str] = []
    polled_next = Next(TaskName.POLL, {"item_id": "copy-2", "seq": 4}, 30.0)
    monkeypatch.setattr(
        dispatch.steps, "submit", lambda _ctx, item_id: submitted.append(item_id) or [polled_next] * (item_id == "w-2")
    )

    def step(_ctx, args):  # each poll saw its job end and handed its slot to a waiting item
        return [Next(TaskName.SUBMIT, {"item_id": f"w-{args.item_id[-1]}", "image_id": "x"})]

    call, _ = _call(_bundle(), step)
    dispatch.mark_running(call, dispatch.run_parts)
    assert submitted == ["w-0", "w-1", "w-2"]
    assert call.ctx.data.records.running == ["i-0", "i-1", "i-2", "w-0", "w-1", "w-2"]  # due by this task's limit
    assert call.nexts == [polled_next]  # the submits ran here; what they asked for is sent

    submitted.clear()
    ctx = _parallel_ctx()
    ctx.behind = Behind(ctx.parallel, limit=3)
    call, published = _call(_bundle(), step, ctx=ctx)
    dispatch.compose(dispatch.MIDDLEWARE[1:])(call)
    assert ctx.behind.drain(10) and sorted(submitted) == ["w-0", "w-1", "w-2"]
    [[sent]] = published  # run behind the task on the step threads, what they asked for sent after
    assert sent.kwargs == polled_next.kwargs

    submitted.clear()
    call, _ = _call(_bundle(TaskName.SUBMIT), step)  # a submit's own asks are messages, as are an admit's grants
    dispatch.run_parts(call)
    assert not submitted and [len(n.kwargs) for n in call.nexts] == [2, 2, 2]


def test_a_step_starts_the_submits_of_the_slots_it_freed_before_it_ends(monkeypatch) -> None:
    # An end poll hands its slot on before it reads the new image and records the verdict.
    started = threading.Event()
    monkeypatch.setattr(dispatch.steps, "submit", lambda _ctx, item_id: started.set() or [])
    seen: list[bool] = []
    patience = [10.0]

    def step(_ctx, args):
        rest = hand_on_now([Next(TaskName.SUBMIT, {"item_id": "w-0", "image_id": "x"}), Next(TaskName.POLL, {})])
        seen.append(started.wait(timeout=patience[0]))  # the submit runs while this step is still at work
        return rest

    ctx = _parallel_ctx()
    ctx.behind = Behind(ctx.parallel, limit=3)
    call, _ = _call(Message(TaskName.POLL, {"item_id": "i-0", "image_id": "img", "seq": 0}, "m-1"), step, ctx=ctx)
    dispatch.run_parts(call)
    assert seen == [True] and [n.task for n in call.nexts] == [TaskName.POLL]
    assert ctx.behind.drain(10) and ctx.data.records.running == ["w-0"]  # due by the task's hard limit

    # With no room behind the process, the task runs it once the step has ended; outside the middleware nothing
    # starts early.
    started.clear()
    ctx.behind, patience[0] = Behind(ctx.parallel, limit=0), 0.0
    call, _ = _call(Message(TaskName.POLL, {"item_id": "i-0", "image_id": "img", "seq": 0}, "m-2"), step, ctx=ctx)
    dispatch.run_parts(call)
    assert seen[-1] is False and started.is_set()
    submit = Next(TaskName.SUBMIT, {"item_id": "w-1"})
    assert hand_on_now([submit]) == [submit]


def test_the_middleware_runs_in_the_documented_order() -> None:
    assert [m.__name__ for m in dispatch.MIDDLEWARE] == [
        "one_at_a_time",
        "keep_when_redis_refuses",
        "poison_guard",
        "send_asked",
        "mark_running",
        "resend_past_soft_limit",
    ]
    assert [m.__name__ for m in dispatch.PART_MIDDLEWARE] == ["hand_on"]


def test_a_part_is_its_steps_typed_arguments() -> None:
    [p] = parts(Message(TaskName.POLL, {"item_id": "i-1", "image_id": "img", "to_region": "r", "seq": "4"}))
    assert isinstance(p, Part) and p.step is STEPS[TaskName.POLL]
    assert (p.args.item_id, p.args.seq, p.args.first_look, p.item_id) == ("i-1", 4, False, "i-1")


def test_short_of_replicas_only_the_steps_not_done_are_sent_again() -> None:
    # The first item's step was done (what it asked for is sent); the second met the refusal; the third never ran.
    done = Next(TaskName.POLL, {"item_id": "i-0", "seq": 1}, 5.0)

    def step(_ctx, args):
        if args.item_id == "i-1":
            raise NotReplicated(0, 1)
        return [done]

    call, published = _call(_bundle(), step)
    dispatch.compose([dispatch.keep_when_redis_refuses, dispatch.send_asked])(call)
    asked, again = published
    assert [n.kwargs for n in asked] == [done.kwargs]
    [resent] = again  # one bundle of the two not done, after a backoff
    assert sorted(k["item_id"] for k in resent.kwargs["bundle"]) == ["i-1", "i-2"]
    assert resent.countdown == pytest.approx(0.5, abs=0.01)


def _parallel_ctx() -> SimpleNamespace:
    ctx = _ctx()
    ctx.parallel = ThreadPoolExecutor(4)
    return ctx


def test_a_bundles_steps_run_side_by_side_on_the_step_threads() -> None:
    # Each waits for the other two: run in turn, the first would wait for ever (here: the barrier's timeout).
    barrier = threading.Barrier(3, timeout=10)
    threads: set[str] = set()

    def step(_ctx, args):
        threads.add(threading.current_thread().name)
        barrier.wait()
        return [Next(TaskName.POLL, {"item_id": args.item_id, "seq": args.seq + 1}, 5.0)]

    call, published = _call(_bundle(), step, ctx=_parallel_ctx())
    dispatch.compose(dispatch.MIDDLEWARE[1:])(call)
    assert len(threads) == 3 and threading.current_thread().name not in threads
    [[message]] = published  # what they asked for still goes as one message
    assert sorted(k["item_id"] for k in message.kwargs["bundle"]) == ["i-0", "i-1", "i-2"]


def test_a_step_that_fails_beside_others_fails_the_message_after_they_end() -> None:
    ended: list[str] = []
    failing = threading.Event()

    def step(_ctx, args):
        if args.item_id == "i-0":
            failing.set()
            raise NotReplicated(0, 1)
        assert failing.wait(10)  # still at work when i-0 fails
        ended.append(args.item_id)
        return [Next(TaskName.POLL, {"item_id": args.item_id, "seq": 9}, 5.0)]

    call, published = _call(_bundle(), step, ctx=_parallel_ctx())
    dispatch.compose([dispatch.keep_when_redis_refuses, dispatch.send_asked])(call)
    asked, again = published
    [bundled] = asked
    assert sorted(ended) == ["i-1", "i-2"] and sorted(k["item_id"] for k in bundled.kwargs["bundle"]) == ["i-1", "i-2"]
    assert [n.kwargs["item_id"] for n in again] == ["i-0"]  # only the failed one is sent again


def test_the_soft_time_limit_in_the_wait_sends_every_unfinished_part_again() -> None:
    release = threading.Event()

    def step(_ctx, args):
        if args.item_id == "i-0":
            return []
        release.wait(10)  # stuck on the network
        return [Next(TaskName.POLL, {"item_id": args.item_id, "seq": 9}, 5.0)]

    call, _ = _call(_bundle(), step, ctx=_parallel_ctx())
    real_wait = dispatch.wait

    def wait_then_limit(futures, return_when):  # the signal lands while the task waits for its stuck parts
        done = real_wait(futures, timeout=0.2, return_when=return_when)
        if done.done:
            return done
        raise SoftTimeLimitExceeded()

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(dispatch, "wait", wait_then_limit)
            dispatch.resend_past_soft_limit(call, dispatch.run_parts)
    finally:
        release.set()
    assert sorted((n.kwargs["item_id"], n.countdown) for n in call.nexts) == [("i-1", 0.5), ("i-2", 0.5)]
    assert not call.running and not call.pending
