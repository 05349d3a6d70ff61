"""The Celery tasks: thin wrappers that run one step of ``worker.steps`` and send the tasks it asks for.

Arguments name the item and its source image (``{"item_id", "image_id"}``, plus ``seq`` for a poll or a follow-up
(``replication.tag``, ``replication.share``), and ``first_look`` for a copy's first poll sent with no forecast; a
cross-region copy's also ``to_region``; an admit takes ``{"batch_id", "cursor"}``, an expand
``{"batch_id", "marker"}``: the image ID its listing page starts after; a plan ``{"plan_id", "stage", "marker"}``; a
grant ``{"pool"}``, a probe, check or confirm ``{"account"}``), never a secret. A submit or a poll may carry several
items instead (``{"bundle": [<an item's arguments>, ...]}``, ``worker.steps.bundles``), each item's step run in turn.
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

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from celery.signals import worker_process_init

from worker import steps
from worker.celery_app import app, settings
from worker.data import NotReplicated, unavailable
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.logcontext import working_on
from worker.pressure import REFUSALS
from worker.queues import ROUTES, TaskName
from worker.runtime import build_context
from worker.steps import Next, StepContext
from worker.steps.bundles import SIZE, bundle, unbundle

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
    _context = build_context(settings)  # each pool process builds its own, before its first task


def send(ctx: StepContext, nexts: list[Next], *, bundled: bool = True) -> None:
    """Record when each message's step is due (the reconciler resends one that never ran), then send them: the
    items' submits and polls in bundles (``worker.steps.bundles``) unless ``bundled`` is False."""
    if not nexts:
        return
    nexts = [n.from_now() for n in nexts]
    steps.expect(ctx, nexts)
    with app.producer_or_acquire() as producer:  # one producer for the lot, not one acquired per message
        for nxt in bundle(nexts) if bundled else nexts:
            app.send_task(
                nxt.task.value,
                kwargs=dict(nxt.kwargs),
                countdown=nxt.countdown or None,
                queue=ROUTES[nxt.task].value,
                producer=producer,
            )


@dataclass(frozen=True)
class _Part:
    """One step a message carries: a bundle carries one per item."""

    subject: str
    step: Callable[[StepContext], list[Next]]
    item_id: str | None
    message: Next  # the step as a message of its own: to send it again


def _one(task: Task, subject: str, step: Callable[[StepContext], list[Next]], item_id: str | None) -> list[_Part]:
    return [_Part(subject, step, item_id, Next(TaskName(task.name), dict(task.request.kwargs)))]


def _items(task: Task, step: Callable[[StepContext, dict[str, Any]], list[Next]]) -> list[_Part]:
    """The parts of a message about items: each item of a bundle, or the message's own item."""
    name = TaskName(task.name)
    parts = []
    for kwargs in unbundle(dict(task.request.kwargs)):
        item_id = str(kwargs["item_id"])
        parts.append(_Part(item_id, functools.partial(step, kwargs=kwargs), item_id, Next(name, kwargs)))
    return parts


def _run(task: Task, subject: str, step: Callable[[StepContext], list[Next]], item_id: str | None) -> None:
    """Run the message's one step (see ``_run_parts``)."""
    _run_parts(task, _one(task, subject, step, item_id))


def _run_parts(task: Task, parts: list[_Part]) -> None:
    """Run the steps; when Redis cannot take their writes, keep the message instead of losing it with a failed task.

    Short of replicas (``NotReplicated``: the master takes writes, its replicas do not confirm them), the steps are
    sent again after a backoff. Refusing writes or unreachable (memory limit, failover, stall), nothing can be sent:
    the message is handed back (``Reject(requeue=True)``), or, if Redis refuses that too, left in kombu's unacked
    hash, where the visibility-timeout sweep finds it once Redis takes writes again (worker/broker.py). Steps are
    idempotent, so running one again after a half-done attempt is safe.
    """
    subject = ", ".join(part.subject for part in parts)
    try:
        _run_steps(task, parts)
    except NotReplicated as exc:
        REFUSALS.refused(f"{task.name} for {subject} sent again later", exc)
        ctx = context()
        send(ctx, [dataclasses.replace(part.message, countdown=ctx.backoff(1)) for part in parts])
        return
    except Exception as exc:
        if not unavailable(exc):
            raise
        REFUSALS.refused(f"{task.name} for {subject} handed back", exc)
        raise Reject(exc, requeue=True) from exc
    REFUSALS.accepted()


def _run_steps(task: Task, parts: list[_Part]) -> None:
    ctx = context()
    if _redelivered(task):
        if len(parts) > 1:  # its worker died holding it: each item goes on alone, so one that kills workers is told
            send(ctx, [_alone(part.message) for part in parts], bundled=False)
            return
        if _poisoned(ctx, task.name, task.request.id, parts[0].subject, parts[0].item_id):
            return
    if item_ids := [part.item_id for part in parts if part.item_id]:  # at work on them: not overdue before
        ctx.data.records.mark_running(*item_ids, until=ctx.clock() + ctx.settings.task_time_limit)  # the hard limit
    nexts: list[Next] = []
    started = time.monotonic()
    try:
        _run_each(ctx, task, parts, nexts, started, hand_on=task.name == TaskName.POLL.value)
    finally:
        if nexts:  # what the steps that ran asked for, even when a later one failed (with the metrics counted)
            send(ctx, nexts)
    if not nexts:
        ctx.data.flush()  # the metrics counted meanwhile (worker.data.tally); after a failure, with the next task's


def _run_each(
    ctx: StepContext, task: Task, parts: list[_Part], nexts: list[Next], started: float, *, hand_on: bool = False
) -> None:
    """Run the parts in turn, adding what they ask for to ``nexts`` (the rest go in a message of their own when the
    cloud is slow); with ``hand_on``, a poll's submits of the slots it freed run right after it."""
    for k, part in enumerate(parts):
        if (k or nexts) and time.monotonic() - started > ctx.settings.task_soft_time_limit / 2:
            nexts += [rest.message for rest in parts[k:]]
            return
        try:
            with working_on(part.item_id):
                asked = part.step(ctx)
        except SoftTimeLimitExceeded:
            # Stuck on the network past the soft limit: run the (idempotent) steps again shortly, not lose them.
            log.warning("%s for %s hit the soft time limit; sending it again", task.name, part.subject)
            nexts += [dataclasses.replace(rest.message, countdown=ctx.backoff(1)) for rest in parts[k:]]
            return
        handed = _handed_on(ctx, asked) if hand_on else []
        nexts += asked
        _run_each(ctx, task, handed, nexts, started)


def _handed_on(ctx: StepContext, asked: list[Next]) -> list[_Part]:
    """The submits of slots a poll freed and handed on (at most a bundle's), taken out of ``asked`` to run in this
    task: a message would wait behind every poll due meanwhile, and the slot with it (IMS's slot is free once the
    job ends). Their items are due by this task's hard limit, so a worker lost meanwhile leaves them to the
    reconciler."""
    submits = [n for n in asked if n.task is TaskName.SUBMIT and not n.countdown and "item_id" in n.kwargs]
    if not submits or len(submits) > SIZE:
        return []
    asked[:] = [n for n in asked if all(n is not s for s in submits)]
    ids = [str(n.kwargs["item_id"]) for n in submits]
    ctx.data.records.set_due(dict.fromkeys(ids, ctx.clock() + ctx.settings.task_time_limit))
    return [
        _Part(item_id, functools.partial(steps.submit, item_id=item_id), item_id, n)
        for item_id, n in zip(ids, submits, strict=True)
    ]


def _alone(message: Next) -> Next:
    """A redelivered bundle's item as a message of its own; a poll keeps its right to take over its chain."""
    return Next(message.task, {**message.kwargs, "redelivered": 1} if message.task is TaskName.POLL else message.kwargs)


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


# A submit or a poll carries one item (``item_id``...) or several (``bundle``: each item's arguments).


@app.task(name=TaskName.SUBMIT.value, bind=True)
def submit(self: Task, **message: object) -> None:  # noqa: ARG001 - read through the request
    _run_parts(self, _items(self, lambda ctx, kwargs: steps.submit(ctx, str(kwargs["item_id"]))))


@app.task(name=TaskName.POLL.value, bind=True)
def poll(self: Task, **message: object) -> None:  # noqa: ARG001 - read through the request
    redelivered = _redelivered(self)  # may take over a chain whose next poll died with its worker

    def step(ctx: StepContext, kwargs: dict[str, Any]) -> list[Next]:
        seq, taken_over = int(kwargs.get("seq", 0)), redelivered or bool(kwargs.get("redelivered"))
        first_look = bool(kwargs.get("first_look"))
        return steps.poll(ctx, str(kwargs["item_id"]), seq, redelivered=taken_over, first_look=first_look)

    _run_parts(self, _items(self, step))


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


# ``shown`` of a timed grant or a probe: what its pool's line waits on (``blocked_by``), for Flower to show.


@app.task(name=TaskName.GRANT.value, bind=True)
def grant(self: Task, pool: str, **shown: object) -> None:  # noqa: ARG001
    _run(self, pool, lambda ctx: steps.grant(ctx, pool), None)


@app.task(name=TaskName.PROBE.value, bind=True)
def probe(self: Task, account: str, **shown: object) -> None:  # noqa: ARG001
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
