"""The Celery tasks: thin wrappers that run one step of ``worker.steps`` and send the tasks it asks for.

Arguments name the item and its source image (``{"item_id", "image_id"}``, plus ``seq`` for a poll or a follow-up
(``replication.tag``, ``replication.share``); a cross-region copy's also ``to_region``; an admit takes
``{"batch_id", "cursor"}``, an expand ``{"batch_id", "marker"}``: the image ID its listing page starts after; a
plan ``{"plan_id", "stage", "marker"}``; a grant ``{"pool"}``, a probe, check or confirm ``{"account"}``), never a
secret.
Rescheduling (the next poll, a retry after an error) is a NEW message sent with ``send_task`` and a countdown,
not ``self.retry``: the step decides what comes next, so polls and error retries take one path; a poll is not an
error and must not inflate Celery's retry count; and the error budget lives on the item (``error_retries``)
where a redelivery cannot reset it. With late acks the new message is sent before the current one is acked, so a
crash in between may duplicate a step; every step is idempotent, and a duplicated poll chain ends itself (see
``worker.steps.poll``). Each message's due time is recorded first (``steps.expect``), and a task marks its item
as being worked on until its hard time limit: the reconciler resends a step only once it is overdue.

Poison guard (a per-message delivery count in the data layer, kept a day): a message Redis hands out again
(``delivery_info['redelivered']``: its worker died, was killed or shut down holding it) is counted per message, not
per item, so an item whose many polls each met one worker restart is not mistaken for poison; past
``max_redeliveries`` deliveries of the same message its item fails with ``REDELIVERY_LIMIT`` instead of killing
worker after worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from celery.signals import worker_process_init

from worker import steps
from worker.celery_app import app, settings
from worker.data import NotReplicated, unavailable
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.pressure import REFUSALS
from worker.queues import ROUTES, TaskName
from worker.runtime import build_context
from worker.steps import Next, StepContext

log = logging.getLogger("worker.tasks")

_context: StepContext | None = None


def context() -> StepContext:
    global _context
    if _context is None:
        _context = build_context(settings)
    return _context


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    global _context
    _context = None  # each pool process opens its own connections


def send(ctx: StepContext, nexts: list[Next]) -> None:
    """Record when each message's step is due (the reconciler resends one that never ran), then send them."""
    steps.expect(ctx, nexts)
    for nxt in nexts:
        app.send_task(
            nxt.task.value, kwargs=dict(nxt.kwargs), countdown=nxt.countdown or None, queue=ROUTES[nxt.task].value
        )


def _run(task: Task, subject: str, step: Callable[[StepContext], list[Next]], item_id: str | None) -> None:
    """Run the step; when Redis cannot take its writes, keep the message instead of losing it with a failed task.

    Short of replicas (``NotReplicated``: the master takes writes, its replicas do not confirm them), the step is
    sent again after a backoff. Refusing writes or unreachable (memory limit, failover, stall), nothing can be sent:
    the message is handed back (``Reject(requeue=True)``), or, if Redis refuses that too, left in kombu's unacked
    hash, where the visibility-timeout sweep finds it once Redis takes writes again (worker/broker.py). Steps are
    idempotent, so running one again after a half-done attempt is safe.
    """
    try:
        _run_step(task, subject, step, item_id)
    except NotReplicated as exc:
        REFUSALS.refused(f"{task.name} for {subject} sent again later", exc)
        ctx = context()
        send(ctx, [Next(TaskName(task.name), dict(task.request.kwargs), ctx.backoff(1))])
        return
    except Exception as exc:
        if not unavailable(exc):
            raise
        REFUSALS.refused(f"{task.name} for {subject} handed back", exc)
        raise Reject(exc, requeue=True) from exc
    REFUSALS.accepted()


def _run_step(task: Task, subject: str, step: Callable[[StepContext], list[Next]], item_id: str | None) -> None:
    ctx = context()
    if _redelivered(task) and _poisoned(ctx, task.name, task.request.id, subject, item_id):
        return
    if item_id is not None:  # at work on it: not overdue before this task's hard time limit
        ctx.data.records.mark_running(item_id, ctx.clock() + ctx.settings.task_time_limit)
    try:
        nexts = step(ctx)
    except SoftTimeLimitExceeded:
        # Stuck on the network past the soft limit: run the (idempotent) step again shortly rather than lose it.
        log.warning("%s for %s hit the soft time limit; sending it again", task.name, subject)
        nexts = [Next(TaskName(task.name), dict(task.request.kwargs), ctx.backoff(1))]
    send(ctx, nexts)


def _redelivered(task: Task) -> bool:
    return bool((task.request.delivery_info or {}).get("redelivered"))


def _poisoned(ctx: StepContext, name: str, message_id: str, subject: str, item_id: str | None) -> bool:
    count = ctx.data.control.count_delivery(message_id)
    if count <= ctx.settings.max_redeliveries:
        return False
    log.error("%s for %s redelivered %d times; giving up on it", name, subject, count)
    item = ctx.data.records.get_item(item_id) if item_id else None
    if item is not None and not item.terminal:
        message = f"{name} was redelivered {count} times (its worker kept dying); gave up"
        if item.state is ItemState.FINISHING:  # the copy exists: only its follow-ups are given up
            send(ctx, steps.give_up(ctx, item, ReasonCode.REDELIVERY_LIMIT, message))
        else:
            send(ctx, steps.finish(ctx, item, ItemState.FAILED, reason=ReasonCode.REDELIVERY_LIMIT, message=message))
    return True


@app.task(name=TaskName.ADMIT.value, bind=True)
def admit(self: Task, batch_id: str, cursor: int = 0, held: int = 0) -> None:
    _run(self, f"{batch_id}:{cursor}", lambda ctx: steps.admit(ctx, batch_id, cursor, held), None)


@app.task(name=TaskName.PLAN.value, bind=True)
def plan(self: Task, plan_id: str, stage: str = "items", marker: str = "") -> None:
    _run(self, f"{plan_id}:{stage}:{marker}", lambda ctx: steps.plan(ctx, plan_id, stage, marker), None)


@app.task(name=TaskName.EXPAND.value, bind=True)
def expand(self: Task, batch_id: str, marker: str = "") -> None:
    _run(self, f"{batch_id}:{marker or 'first page'}", lambda ctx: steps.expand(ctx, batch_id, marker), None)


# ``shown``: the source image ID (and a cross-region copy's ``to_region``), sent only for Flower to show.


@app.task(name=TaskName.VALIDATE.value, bind=True)
def validate(self: Task, item_id: str, **shown: object) -> None:  # noqa: ARG001
    _run(self, item_id, lambda ctx: steps.validate(ctx, item_id), item_id)


@app.task(name=TaskName.SUBMIT.value, bind=True)
def submit(self: Task, item_id: str, **shown: object) -> None:  # noqa: ARG001
    _run(self, item_id, lambda ctx: steps.submit(ctx, item_id), item_id)


@app.task(name=TaskName.POLL.value, bind=True)
def poll(self: Task, item_id: str, seq: int = 0, **shown: object) -> None:  # noqa: ARG001
    redelivered = _redelivered(self)  # may take over a chain whose next poll died with its worker
    _run(self, item_id, lambda ctx: steps.poll(ctx, item_id, seq, redelivered=redelivered), item_id)


@app.task(name=TaskName.EXPIRE_BATCHES.value, bind=True)
def expire_batches(self: Task) -> None:
    _run(self, "cluster", steps.expire_batches, None)


def _followup(task: Task, item_id: str, seq: int) -> None:
    redelivered = _redelivered(task)  # may take over a chain whose next task died with its worker
    _run(task, item_id, lambda ctx: steps.followup(ctx, item_id, seq, redelivered=redelivered), item_id)


@app.task(name=TaskName.TAG.value, bind=True)
def tag(self: Task, item_id: str, seq: int = 0, **shown: object) -> None:  # noqa: ARG001
    _followup(self, item_id, seq)


@app.task(name=TaskName.SHARE.value, bind=True)
def share(self: Task, item_id: str, seq: int = 0, **shown: object) -> None:  # noqa: ARG001
    _followup(self, item_id, seq)
@app.task(name=TaskName.GRANT.value, bind=True)
def grant(self: Task, pool: str) -> None:
    _run(self, pool, lambda ctx: steps.grant(ctx, pool), None)


@app.task(name=TaskName.PROBE.value, bind=True)
def probe(self: Task, account: str) -> None:
    _run(self, account, lambda ctx: steps.probe(ctx, account), None)


@app.task(name=TaskName.CHECK.value, bind=True)
def check(self: Task, account: str) -> None:
    _run(self, account, lambda ctx: steps.check(ctx, account), None)


@app.task(name=TaskName.CONFIRM.value, bind=True)
def confirm(self: Task, account: str) -> None:
    _run(self, account, lambda ctx: steps.confirm(ctx, account), None)


@app.task(name=TaskName.RECONCILE.value, bind=True)
def reconcile(self: Task) -> None:
    lock = context().data.control.reconcile_lock(timeout=settings.task_time_limit + 10)
    try:
        if not lock.acquire(blocking=False):
            return  # another beat's run is under way
    except Exception as exc:
        if not unavailable(exc):
            raise
        REFUSALS.refused("reconciler skipped; the next interval runs it", exc)
        return
    try:
        _run(self, "cluster", steps.reconcile, None)
    finally:
        lock.release()
