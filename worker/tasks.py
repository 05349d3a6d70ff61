"""The Celery tasks: one per row of the step registry (``worker.registry``), each handing its message to
``worker.dispatch``, which runs the step through the middleware and publishes what it asks for here.

Arguments name the item or whatever else the step is about (typed per step in the registry), never a secret; a
submit or a poll may carry several items (``{"bundle": [...]}``, ``worker.bundles``). Rescheduling (the next
poll, a retry after an error) is a NEW message sent with a countdown, not ``self.retry``: the step decides what comes
next, so polls and error retries take one path; a poll is not an error and must not inflate Celery's retry count;
and the error budget lives on the item (``error_retries``) where a redelivery cannot reset it. With late acks the new
message is sent before the current one is acked, so a crash in between may duplicate a step; every step is
idempotent, and a duplicated poll chain ends itself (see ``worker.steps.poll``).
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_process_init, worker_process_shutdown

from worker.call import HandBack, Message
from worker.celery_app import app, settings
from worker.dispatch import dispatch
from worker.logcontext import running_task
from worker.registry import ROUTES, STEPS, Step
from worker.runtime import build_context
from worker.steps import Next, StepContext

_context: StepContext | None = None


def context() -> StepContext:
    global _context
    if _context is None:
        _context = build_context(settings)
    return _context


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    global _context
    _context = build_context(settings)  # each pool process builds its own, before its first task


@worker_process_shutdown.connect
def _before_exit(**_: Any) -> None:
    if _context is not None and _context.behind is not None:
        _context.behind.drain(settings.worker_soft_shutdown_seconds)  # the copy calls a poll handed on, mostly sent


def publish(messages: list[Next]) -> None:
    with app.producer_or_acquire() as producer:  # one producer for the lot, not one acquired per message
        for nxt in messages:
            app.send_task(
                nxt.task.value,
                kwargs=dict(nxt.kwargs),
                countdown=nxt.countdown or None,
                queue=ROUTES[nxt.task].value,
                producer=producer,
            )


def _task(step: Step[Any]) -> Task:
    def run(self: Task, **kwargs: object) -> None:
        delivery = self.request.delivery_info or {}
        message = Message(step.name, kwargs, self.request.id, bool(delivery.get("redelivered")))
        try:
            with running_task(step.name.value, self.request.id, kwargs):
                dispatch(context(), message, publish)
        except HandBack as exc:
            raise Reject(str(exc), requeue=True) from exc

    run.__name__ = step.name.value.rsplit(".", 1)[1]
    return app.task(name=step.name.value, bind=True)(run)


TASKS = {name: _task(step) for name, step in STEPS.items()}
