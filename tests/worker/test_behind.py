"""Steps left behind their message (worker.behind): their asks go with the message's if they have ended by then,
else together once the last ends; a bounded number behind a process; a failure left to the reconciler without losing
the others' asks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from worker.behind import Behind
from worker.call import LeftBehind, Message, parts
from worker.ims.roundtrip import RoundTrip
from worker.queues import TaskName
from worker.steps import Next


def _ctx() -> SimpleNamespace:
    due: dict[str, float] = {}
    data = SimpleNamespace(steps_sent=due.update, due=due)
    return SimpleNamespace(data=data, clock=lambda: 100.0, round_trip=RoundTrip())


def _submits(*ids: str):
    return parts(Message(TaskName.SUBMIT, {"bundle": [{"item_id": i, "image_id": "img"} for i in ids]}, "m", False))


def _first_poll(p) -> list[Next]:
    return [Next(TaskName.POLL, {"item_id": p.item_id, "seq": 0, "first_look": 1}, 1.0)]


def test_asks_of_steps_ended_before_their_message_sends_go_with_its_own() -> None:
    behind, group, published = Behind(ThreadPoolExecutor(4), limit=5), LeftBehind(), []
    assert behind.start(_ctx(), published.append, group, _submits("w-1", "w-2"), _first_poll)
    assert behind.drain(10) and published == []  # ended: kept for the message
    assert sorted(n.kwargs["item_id"] for n in behind.seal(group)) == ["w-1", "w-2"]


def test_asks_of_steps_still_at_work_go_together_once_the_last_has_ended() -> None:
    ctx, group, published, release = _ctx(), LeftBehind(), [], threading.Event()
    behind = Behind(ThreadPoolExecutor(4), limit=5)

    def run(p):
        if p.item_id == "w-2":
            release.wait(10)
        return _first_poll(p)

    assert behind.start(ctx, published.append, group, _submits("w-1", "w-2"), run)
    assert not behind.drain(0.2) and behind.seal(group) == []  # one still at work: the message sends none of them
    assert not behind.start(ctx, published.append, group, _submits("w-3"), run)  # sealed: its message runs that
    release.set()
    assert behind.drain(10)
    [[message]] = published  # a grant's first polls share one message, as from the task
    assert sorted(k["item_id"] for k in message.kwargs["bundle"]) == ["w-1", "w-2"]
    assert set(ctx.data.due) == {"w-1", "w-2"}  # due recorded: the reconciler tells a lost step from a slow one


def test_no_more_than_its_limit_go_behind_a_process() -> None:
    ctx, release = _ctx(), threading.Event()
    behind = Behind(ThreadPoolExecutor(4), limit=3)
    assert behind.start(ctx, print, LeftBehind(), _submits("a", "b"), lambda p: release.wait(10) and [])
    assert not behind.start(ctx, print, LeftBehind(), _submits("c", "d"), _first_poll)  # the task runs these itself
    release.set()
    assert behind.drain(10)
    assert behind.start(ctx, print, LeftBehind(), _submits("c", "d"), _first_poll) and behind.drain(10)


def test_a_step_that_fails_behind_leaves_its_item_to_the_reconciler(caplog) -> None:
    ctx, group, published, release = _ctx(), LeftBehind(), [], threading.Event()
    behind = Behind(ThreadPoolExecutor(2), limit=5)

    def run(p):
        release.wait(10)
        if p.item_id == "bad":
            raise ConnectionError("redis went away")
        return _first_poll(p)

    assert behind.start(ctx, published.append, group, _submits("bad", "good"), run) and behind.seal(group) == []
    release.set()
    assert behind.drain(10)
    [[message]] = published
    assert message.kwargs["item_id"] == "good"  # the other's ask still sent
    assert "submit for bad failed behind its message" in caplog.text
