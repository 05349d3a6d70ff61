"""The step registry: one row per task, and everything that lists tasks derived from it."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from worker.domain.followups import Kind
from worker.domain.states import ItemState
from worker.queues import Queue, TaskName
from worker.registry import ROUTES, STEPS, BadArguments, beat_schedule, followup_task, resend_for
from worker.steps import Next


def test_every_task_name_has_one_row_and_a_queue() -> None:
    assert set(STEPS) == set(TaskName)
    assert all(name is step.name and isinstance(step.queue, Queue) for name, step in STEPS.items())
    assert ROUTES[TaskName.SUBMIT] is Queue.SUBMIT and ROUTES[TaskName.CHECK] is Queue.MAINTENANCE


def test_the_celery_app_registers_and_routes_exactly_the_registrys_tasks() -> None:
    from worker import tasks

    assert {name: task.name for name, task in tasks.TASKS.items()} == {name: name.value for name in STEPS}
    assert all(name.value in tasks.app.tasks for name in STEPS)  # among them: other tests register their own
    routes = tasks.app.conf.task_routes
    assert {name: route["queue"] for name, route in routes.items()} == {n.value: q.value for n, q in ROUTES.items()}


def test_beat_sends_the_periodic_steps_at_their_settings_intervals() -> None:
    settings = load_settings(demo=True, reconcile_interval=7, retention_sweep_seconds=600, policy_tick_seconds=3)
    schedule = beat_schedule(settings)
    assert schedule["reconcile"]["task"] == TaskName.RECONCILE.value and schedule["reconcile"]["schedule"] == 7
    assert schedule["expire-batches"]["options"] == {"queue": "maintenance", "expires": 600}
    assert schedule["start-runs"]["schedule"] == 3 and schedule["start-runs"]["options"]["queue"] == "maintenance"
    assert set(schedule) == {"reconcile", "expire-batches", "start-runs"}


def test_the_reconcilers_resends_and_the_followup_chain_come_from_the_table() -> None:
    assert [resend_for(s) for s in (ItemState.ACCEPTED, ItemState.VALIDATING)] == [TaskName.VALIDATE] * 2
    assert [resend_for(s) for s in (ItemState.WAITING, ItemState.SUBMITTING)] == [TaskName.SUBMIT] * 2
    assert resend_for(ItemState.REPLICATING) is TaskName.POLL and resend_for(ItemState.SUCCEEDED) is None
    assert [followup_task(k) for k in Kind] == [TaskName.TAG, TaskName.SHARE, TaskName.DISTRIBUTE]
    followups = {TaskName.TAG, TaskName.SHARE, TaskName.DISTRIBUTE}
    assert {n for n, s in STEPS.items() if s.sequenced} == {TaskName.POLL, *followups}
    assert {n for n, s in STEPS.items() if s.bundled} == {
        TaskName.VALIDATE,
        TaskName.SUBMIT,
        TaskName.POLL,
        TaskName.NEW_IMAGES,
    }
    assert {n for n, s in STEPS.items() if s.item_scoped} == {
        TaskName.VALIDATE,
        TaskName.SUBMIT,
        TaskName.POLL,
        *followups,
    }


def test_what_the_steps_send_fits_the_arguments_and_what_is_only_shown_is_left_out() -> None:
    item = Next.for_ids(TaskName.POLL, "i-1", "img-1", "cn-south-1", 2.0, seq=3, first_look=1)
    args = STEPS[TaskName.POLL].parse(item.kwargs)
    assert (args.item_id, args.seq, args.first_look, args.redelivered) == ("i-1", 3, True, False)
    grant = STEPS[TaskName.GRANT].parse({"pool": "default", "blocked_by": "quota"})
    assert grant.subject == "default"
    assert STEPS[TaskName.ADMIT].parse({"batch_id": "b-1"}).subject == "b-1:0"


@pytest.mark.parametrize(
    ("task", "kwargs", "named"),
    [
        (TaskName.SUBMIT, {"item_id": "i-1", "seq": 2}, "seq: Unexpected keyword argument"),
        (TaskName.POLL, {"seq": 2}, "item_id: Field required"),
        (TaskName.ADMIT, {"batch_id": "b", "cursor": "next"}, "cursor: Input should be a valid integer"),
    ],
)
def test_arguments_that_do_not_fit_are_refused_naming_the_field(task, kwargs, named) -> None:
    with pytest.raises(BadArguments, match=named):
        STEPS[task].parse(kwargs)
