"""Bundles: a step's messages grouped, up to ``SIZE``, polls only with those due within their slack, never early."""

from __future__ import annotations

from dataclasses import replace

from worker.bundles import NEAR_SLACK_SHARE, SHORT, SIZE, SLACK, SLACK_SHARE, bundle, unbundle
from worker.queues import TaskName
from worker.steps.context import Next


def _submit(n: int, countdown: float = 0.0) -> Next:
    return Next(TaskName.SUBMIT, {"item_id": f"i-{n}", "image_id": f"img-{n}"}, countdown)


def _poll(n: int, countdown: float) -> Next:
    return Next(TaskName.POLL, {"item_id": f"p-{n}", "image_id": f"img-{n}", "seq": 1}, countdown)


def _look(n: int, countdown: float) -> Next:
    return Next(TaskName.POLL, {"item_id": f"l-{n}", "image_id": f"img-{n}", "seq": 0, "first_look": 1}, countdown)


def test_grants_submits_go_in_messages_of_size_after_the_other_messages() -> None:
    admit = Next(TaskName.ADMIT, {"batch_id": "b", "cursor": 500})
    sent = bundle([admit, *(_submit(n) for n in range(2 * SIZE + 2))])
    assert sent[0] == admit
    bundles = sent[1:]
    assert [len(b.kwargs["bundle"]) if "bundle" in b.kwargs else 1 for b in bundles] == [SIZE, SIZE, 2]
    assert all(b.task is TaskName.SUBMIT and b.countdown == 0 for b in bundles)
    carried = [item for b in bundles for item in unbundle(dict(b.kwargs))]
    assert carried == [dict(_submit(n).kwargs) for n in range(2 * SIZE + 2)]  # every item once, its own arguments


def test_the_new_image_checks_of_accounts_whose_copies_ended_together_go_as_one_message() -> None:
    checks = [Next(TaskName.NEW_IMAGES, {"account": a}, 2.0) for a in ("a", "b", "c")]
    (sent,) = bundle(checks)
    assert sent.task is TaskName.NEW_IMAGES and unbundle(dict(sent.kwargs)) == [{"account": a} for a in "abc"]


def test_polls_go_together_only_when_due_within_the_slack_and_never_early() -> None:
    polls = [_poll(0, 200.0), _poll(1, 200.1), _poll(2, 200.0 + SLACK), _poll(3, 200.0 + SLACK + 0.01), _poll(4, 1.0)]
    sent = bundle(polls)
    assert [sorted(item["item_id"] for item in unbundle(dict(b.kwargs))) for b in sent] == [
        ["p-4"],
        ["p-0", "p-1", "p-2"],
        ["p-3"],
    ]
    assert sent[0] == polls[4]  # alone: sent as it was
    assert sent[1].countdown == 200.0 + SLACK  # the latest of them: none is polled before its own time


def test_a_lone_item_message_and_the_other_steps_are_sent_as_they_were() -> None:
    tag = Next(TaskName.TAG, {"item_id": "t", "seq": 0})
    validate = Next(TaskName.VALIDATE, {"item_id": "v"})
    assert bundle([tag, _submit(1), validate]) == [tag, validate, _submit(1)]
    assert unbundle({"item_id": "x", "seq": 2}) == [{"item_id": "x", "seq": 2}]


def test_a_short_copys_poll_waits_for_others_no_longer_than_its_own_margin() -> None:
    # 2 s copies: a second would be half the copy; 2 % of the wait (0.04 s) at most.
    sent = bundle([_poll(0, 2.0), _poll(1, 2.03), _poll(2, 2.05)])
    assert [[item["item_id"] for item in unbundle(dict(b.kwargs))] for b in sent] == [["p-0", "p-1"], ["p-2"]]


def test_first_looks_asked_while_a_messages_parts_ran_go_together_when_due_within_that_spread() -> None:
    # A grant's first looks (1 s after their copy calls, which returned over 0.15 s): 2 % of 1 s would split them.
    looks = [_look(0, 1.0), _look(1, 1.1), _look(2, 1.15)]
    assert len(bundle(looks)) == 3
    (sent,) = bundle(looks, spread=0.15)
    assert len(unbundle(dict(sent.kwargs))) == 3 and sent.countdown == 1.15
    # A poll aimed at a copy's end is not held by the spread: its hand-off would wait for it.
    assert len(bundle([_poll(0, 1.0), _poll(1, 1.1)], spread=0.15)) == 2


def test_the_polls_of_short_copies_go_five_at_a_time_as_one_grants() -> None:
    short = [_poll(n, 2.0) for n in range(12)]  # 2 s copies: 25 steps' own work would hold the last hand-off 0.2 s
    assert [len(unbundle(dict(b.kwargs))) for b in bundle(short)] == [SHORT, SHORT, 2]
    long = [_poll(n, 60.0) for n in range(30)]
    assert [len(unbundle(dict(b.kwargs))) for b in bundle(long)] == [SIZE, 5]
    looks = [_look(n, 1.0) for n in range(30)]  # first looks: the copies' length is not known yet
    assert [len(unbundle(dict(b.kwargs))) for b in bundle(looks)] == [SIZE, 5]


def test_an_end_poll_is_held_by_a_share_of_the_copys_age_not_of_its_countdown() -> None:
    # Copies 50 s old whose ends are read off their progress 10 s ahead: the estimates differ by about 1 % of 60 s.
    polls = [replace(_poll(n, 10.0 + 0.4 * n), span=60.0 + 0.4 * n) for n in range(4)]
    assert len(bundle([replace(p, span=None) for p in polls])) == 4  # by 2 % of the countdown: 0.2 s
    sent = bundle(polls)
    assert [len(unbundle(dict(b.kwargs))) for b in sent] == [3, 1]  # by 2 % of 60 s, a second at most
    assert sent[0].countdown == 10.8
    assert min(SLACK, SLACK_SHARE * 600) == SLACK == 1.0  # a 10 minute copy's poll too


def test_on_a_near_cloud_messages_carry_one_grants_steps() -> None:
    # A few milliseconds away, 25 steps' own work one after another is most of a message: five at a time.
    assert [len(unbundle(dict(b.kwargs))) for b in bundle([_submit(n) for n in range(12)], far=False)] == [5, 5, 2]
    assert [len(unbundle(dict(b.kwargs))) for b in bundle([_look(n, 1.0) for n in range(6)], far=False)] == [5, 1]


def test_on_a_near_cloud_an_end_poll_is_held_by_a_quarter_of_the_share() -> None:
    # 2 s copies ending 5 ms and 20 ms apart: far away, all within 2 % of 2 s (0.04 s); near, within 0.5 % (0.01 s).
    polls = [replace(_poll(n, countdown), span=2.0) for n, countdown in enumerate((1.0, 1.005, 1.02))]
    assert [len(unbundle(dict(b.kwargs))) for b in bundle(polls)] == [3]
    near = bundle(polls, far=False)
    assert [len(unbundle(dict(b.kwargs))) for b in near] == [2, 1]
    assert [b.countdown for b in near] == [1.005, 1.02]  # none polled before its own time
    assert NEAR_SLACK_SHARE * 4 == SLACK_SHARE
