"""Bundles: an item step's messages grouped, up to five, polls only with those due within a quarter second."""

from __future__ import annotations

from worker.bundles import SIZE, SLACK, bundle, unbundle
from worker.queues import TaskName
from worker.steps.context import Next


def _submit(n: int, countdown: float = 0.0) -> Next:
    return Next(TaskName.SUBMIT, {"item_id": f"i-{n}", "image_id": f"img-{n}"}, countdown)


def _poll(n: int, countdown: float) -> Next:
    return Next(TaskName.POLL, {"item_id": f"p-{n}", "image_id": f"img-{n}", "seq": 1}, countdown)


def test_a_grants_submits_go_in_messages_of_five_after_the_other_messages() -> None:
    admit = Next(TaskName.ADMIT, {"batch_id": "b", "cursor": 500})
    confirm = Next(TaskName.NEW_IMAGES, {"account": "a"}, 2.0)
    sent = bundle([admit, *(_submit(n) for n in range(12)), confirm])
    assert sent[:2] == [admit, confirm]
    bundles = sent[2:]
    assert [len(b.kwargs["bundle"]) if "bundle" in b.kwargs else 1 for b in bundles] == [SIZE, SIZE, 2]
    assert all(b.task is TaskName.SUBMIT and b.countdown == 0 for b in bundles)
    carried = [item for b in bundles for item in unbundle(dict(b.kwargs))]
    assert carried == [dict(_submit(n).kwargs) for n in range(12)]  # every item once, its own arguments


def test_polls_go_together_only_when_due_within_the_slack_and_never_early() -> None:
    polls = [_poll(0, 60.0), _poll(1, 60.1), _poll(2, 60.0 + SLACK), _poll(3, 60.0 + SLACK + 0.01), _poll(4, 1.0)]
    sent = bundle(polls)
    assert [sorted(item["item_id"] for item in unbundle(dict(b.kwargs))) for b in sent] == [
        ["p-4"],
        ["p-0", "p-1", "p-2"],
        ["p-3"],
    ]
    assert sent[0] == polls[4]  # alone: sent as it was
    assert sent[1].countdown == 60.0 + SLACK  # the latest of them: none is polled before its own time


def test_a_lone_item_message_and_the_other_steps_are_sent_as_they_were() -> None:
    tag = Next(TaskName.TAG, {"item_id": "t", "seq": 0})
    validate = Next(TaskName.VALIDATE, {"item_id": "v"})
    assert bundle([tag, _submit(1), validate]) == [tag, validate, _submit(1)]
    assert unbundle({"item_id": "x", "seq": 2}) == [{"item_id": "x", "seq": 2}]


def test_a_short_copys_poll_waits_for_others_no_longer_than_its_own_margin() -> None:
    # 2 s copies: a quarter second would be an eighth of the copy; 1 % of the wait (0.02 s) at most.
    sent = bundle([_poll(0, 2.0), _poll(1, 2.015), _poll(2, 2.03)])
    assert [[item["item_id"] for item in unbundle(dict(b.kwargs))] for b in sent] == [["p-0", "p-1"], ["p-2"]]
