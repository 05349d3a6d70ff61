"""How a step runs: ``dispatch`` takes a message through the middleware, in order (``MIDDLEWARE``, outermost
first), to its parts, each run through ``PART_MIDDLEWARE``. The Celery tasks (``worker.tasks``) and the steps tier of
the tests both run messages this way.

A message middleware is ``(call, inner) -> None`` and calls ``inner(call)`` to go on; a part middleware is
``(call, part, inner) -> nexts``. Each is testable alone; docs/architecture.md ("How a step runs") tells the order
and why.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait

from celery.exceptions import SoftTimeLimitExceeded

from worker import steps
from worker.bundles import SIZE
from worker.call import Call, HandBack, Message, Next, Part, Publish, part, parts
from worker.data import NotReplicated, unavailable
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.logcontext import working_on
from worker.pressure import REFUSALS
from worker.queues import TaskName
from worker.steps.context import HANDING_ON, StepContext, on_step_thread

log = logging.getLogger("worker.tasks")

Inner = Callable[[Call], None]
PartInner = Callable[[Part], list[Next]]


def one_at_a_time(call: Call, inner: Inner) -> None:
    """An exclusive step (the reconciler) runs once at a time cluster-wide; a second run, or one Redis cannot lock
    for, is skipped: the next interval runs it. The lock outlives a killed task by at most ``task_time_limit``."""
    if not call.step.exclusive:
        inner(call)
        return
    lock = call.ctx.data.control.step_lock(call.message.task.value, timeout=call.ctx.settings.task_time_limit + 10)
    try:
        if not lock.acquire(blocking=False):
            return  # another beat's run is under way
    except Exception as exc:
        if not unavailable(exc):
            raise
        REFUSALS.refused(f"{call.message.task.value} skipped; the next interval runs it", exc)
        return
    try:
        inner(call)
    finally:
        lock.release()


def keep_when_redis_refuses(call: Call, inner: Inner) -> None:
    """When Redis cannot take the steps' writes, keep the message instead of losing it with a failed task.

    Short of replicas (``NotReplicated``: the master takes writes, its replicas do not confirm them), the steps not
    yet done (the one that met it, the rest; what the others asked for is sent by ``send_asked``) are sent again
    after a backoff. Refusing writes or unreachable (memory limit, failover, stall), nothing can be sent:
    the message is handed back (``HandBack``), or, if Redis refuses that too, left in kombu's unacked hash, where the
    visibility-timeout sweep finds it once Redis takes writes again (worker/broker.py). Steps are idempotent, so
    running one again after a half-done attempt is safe.
    """
    what = f"{call.message.task.value} for {call.subject}"
    try:
        inner(call)
    except NotReplicated as exc:
        REFUSALS.refused(f"{what} sent again later", exc)
        backoff = call.ctx.backoff(1)
        call.send([Next(p.message.task, p.message.kwargs, backoff) for p in call.unfinished()])
        return
    except Exception as exc:
        if not unavailable(exc):
            raise
        REFUSALS.refused(f"{what} handed back", exc)
        raise HandBack(str(exc)) from exc
    REFUSALS.accepted()


def poison_guard(call: Call, inner: Inner) -> None:
    """A message Redis hands out again (its worker died, was killed or shut down holding it) is counted per
    message, not per item, so an item whose many polls each met one worker restart is not mistaken for poison; past
    ``max_redeliveries`` deliveries its item fails with ``REDELIVERY_LIMIT`` instead of killing worker after worker.
    A redelivered bundle goes on as a message per item first, so that an item that kills its worker is told."""
    if not call.message.redelivered:
        inner(call)
        return
    if len(call.parts) > 1:
        call.send([_alone(p) for p in call.parts], bundled=False)
        return
    if not _poisoned(call, call.parts[0]):
        inner(call)


def _alone(p: Part) -> Next:
    """A redelivered bundle's item as a message of its own; a chain step keeps its right to take its chain over."""
    return Next(p.message.task, {**p.message.kwargs, "redelivered": 1} if p.step.sequenced else p.message.kwargs)


def _poisoned(call: Call, p: Part) -> bool:
    ctx, name = call.ctx, call.message.task.value
    count = ctx.data.control.count_delivery(call.message.id)
    if count <= ctx.settings.max_redeliveries:
        return False
    log.error("%s for %s redelivered %d times; giving up on it", name, p.subject, count)
    item = ctx.data.records.get_item(p.item_id) if p.item_id else None
    if item is not None and not item.terminal:
        message = f"{name} was redelivered {count} times (its worker kept dying); gave up"
        if item.state is ItemState.FINISHING:  # the copy exists: only its follow-ups are given up
            call.send(steps.give_up(ctx, item, ReasonCode.REDELIVERY_LIMIT, message))
        else:
            call.send(steps.finish(ctx, item, ItemState.FAILED, reason=ReasonCode.REDELIVERY_LIMIT, message=message))
    return True


def send_asked(call: Call, inner: Inner) -> None:
    """Send what the steps that ran asked for, even when a later one failed, and those it left behind if they have
    ended (``worker.behind``); with nothing to send, add up the metrics counted meanwhile (``worker.data.tally``;
    sending does it too)."""
    try:
        inner(call)
    finally:
        if call.ctx.behind is not None:
            call.nexts += call.ctx.behind.seal(call.behind)
        call.send(call.nexts)
    if not call.nexts:
        call.ctx.data.flush()


def mark_running(call: Call, inner: Inner) -> None:
    """The message's items are at work until the hard time limit: the reconciler does not take them for lost."""
    if item_ids := [p.item_id for p in call.parts if p.item_id]:
        call.ctx.data.records.mark_running(*item_ids, until=call.ctx.clock() + call.ctx.settings.task_time_limit)
    inner(call)


def resend_past_soft_limit(call: Call, inner: Inner) -> None:
    """Stuck on the network past the soft time limit: the parts not done run again shortly (they are idempotent),
    rather than being lost with the task. What the parts done asked for is sent (``send_asked``); one still at work
    on a step thread is left to end on its own, its result unused (its resend meets what it did)."""
    try:
        inner(call)
    except SoftTimeLimitExceeded:
        log.warning("%s for %s hit the soft time limit; sending it again", call.message.task.value, call.subject)
        call.pending, call.inline = deque(call.unfinished()), None
        call.running.clear()
        call.defer_rest(call.ctx.backoff(1))


def run_parts(call: Call) -> None:
    """Run the parts through ``PART_MIDDLEWARE``: one alone in this thread (where the soft time limit lands); several
    (a bundle's, the submits a poll hands on) side by side on the process's step threads, since each mostly waits
    on the cloud. Once half the soft time limit is spent (the cloud is slow), the parts not yet started go in a
    message of their own rather than risk the limit."""
    run = compose_part(PART_MIDDLEWARE)
    started = False
    while call.pending or call.running:
        while call.pending:
            if (started or call.nexts) and _half_spent(call):
                call.defer_rest()
                break
            p = call.pending.popleft()
            started = True
            if call.ctx.parallel is None or not (call.pending or call.running):
                call.inline = p
                call.nexts += run(call, p)
                call.inline = None
            else:
                call.running[on_step_thread(call.ctx.parallel, run, call, p)] = p
        if call.running:
            _collect(call, wait(call.running, return_when=FIRST_COMPLETED).done)


def _collect(call: Call, done: set[Future[list[Next]]]) -> None:
    """Add what the finished parts asked for; a part that failed fails the message once the others have ended (what
    they asked for is sent: ``send_asked``), and is not done (``Call.unfinished``)."""
    failed: BaseException | None = None
    for future in done:
        p = call.running.pop(future)
        if (error := future.exception()) is not None:
            failed = failed or error
            call.pending.appendleft(p)
        else:
            call.nexts += future.result()
    if failed is not None:
        while call.running:
            _collect(call, wait(call.running).done)
        raise failed


def _half_spent(call: Call) -> bool:
    return time.monotonic() - call.started > call.ctx.settings.task_soft_time_limit / 2


def hand_on(call: Call, p: Part, inner: PartInner) -> list[Next]:
    """The submits of slots a poll freed and handed on (at most a bundle's) run at once, not as messages: a message
    would wait behind every poll due meanwhile, and the slot with it (IMS's slot is free once the job ends). They
    go on behind this task on the step threads (``worker.behind``) while the process takes its next message, or,
    with too many there already, in this task. Their items are due by this task's hard limit, so a worker lost
    meanwhile leaves them to the reconciler. A step may start them before it ends (``hand_on_now``): an end poll
    frees its slot before it reads the new image and records the verdict."""
    if not p.step.hands_on:
        return inner(p)
    token = HANDING_ON.set(functools.partial(_left_behind, call))
    try:
        asked = _left_behind(call, inner(p))
    finally:
        HANDING_ON.reset(token)
    if submits := _handed_on(asked):  # none could go behind: this task runs them
        call.pending.extendleft(reversed([part(n) for n in submits]))
        return [n for n in asked if all(n is not s for s in submits)]
    return asked


def _handed_on(asked: list[Next]) -> list[Next]:
    """The submits among ``asked`` that a poll runs rather than sends: a bundle's worth at most."""
    submits = [n for n in asked if n.task is TaskName.SUBMIT and not n.countdown and "item_id" in n.kwargs]
    return submits if len(submits) <= SIZE else []


def _left_behind(call: Call, asked: list[Next]) -> list[Next]:
    """``asked`` without the submits it hands on, once they have gone on behind this task; all of it when they
    could not (no room behind the process), or there are none."""
    if not (submits := _handed_on(asked)):
        return asked
    ids = [str(n.kwargs["item_id"]) for n in submits]
    call.ctx.data.records.set_due(dict.fromkeys(ids, call.ctx.clock() + call.ctx.settings.task_time_limit))
    behind, run = call.ctx.behind, functools.partial(_run_part, call)
    if behind is None or not behind.start(call.ctx, call.publish, call.behind, [part(n) for n in submits], run):
        return asked
    return [n for n in asked if all(n is not s for s in submits)]


Middleware = Callable[[Call, Inner], None]
PartMiddleware = Callable[[Call, Part, PartInner], list[Next]]

MIDDLEWARE: list[Middleware] = [
    one_at_a_time,
    keep_when_redis_refuses,
    poison_guard,
    send_asked,
    mark_running,
    resend_past_soft_limit,
]
PART_MIDDLEWARE: list[PartMiddleware] = [hand_on]


def compose(middleware: list[Middleware], innermost: Inner = run_parts) -> Inner:
    handler = innermost
    for m in reversed(middleware):
        handler = functools.partial(m, inner=handler)
    return handler


def compose_part(middleware: list[PartMiddleware]) -> Callable[[Call, Part], list[Next]]:
    def handler(call: Call, p: Part) -> list[Next]:
        inner: PartInner = functools.partial(_run_part, call)
        for m in reversed(middleware):
            inner = functools.partial(m, call, inner=inner)
        return inner(p)

    return handler


def _run_part(call: Call, p: Part) -> list[Next]:
    with working_on(p.item_id):  # its log lines name the item
        return p.run(call.ctx)


def dispatch(ctx: StepContext, message: Message, publish: Publish, middleware: list[Middleware] = MIDDLEWARE) -> None:
    """Run the message's steps; what they ask for is published (``worker.call.send``)."""
    compose(middleware)(Call(ctx, message, publish, parts(message)))
