"""How steps end: a terminal state (freeing the item's slot for the next waiting item) or a retry with backoff."""

from __future__ import annotations

import logging

from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.states import ENDING, ItemState
from worker.errors import AuthenticationError, PermanentError, RetryableError, ThrottledError
from worker.queues import TaskName
from worker.ratelimit import CircuitOpen, HeldBack
from worker.steps.context import Next, StepContext
from worker.steps.probe import ensure_probe
from worker.steps.scheduling import grant_slots, pool_of

log = logging.getLogger("worker.steps")


def finish(
    ctx: StepContext,
    item: ReplicationItem,
    state: ItemState,
    *,
    reason: ReasonCode | None = None,
    message: str | None = None,
    **fields: object,
) -> list[Next]:
    """Move the item to a terminal state; then its slot (if any) goes to the next waiting item of its pool."""
    now = ctx.clock()
    result = ctx.data.records.move(item, ENDING[state], reason=reason, message=message, now=now, **fields)
    if result.ok:
        # From the item's first acceptance: a retried item's latency includes its earlier attempts.
        ctx.data.telemetry.record_latency(state.value, now - item.created_at, item.mode)
        log.info("item %s %s%s", item.id, state.value, f" ({reason.value}: {message})" if reason else "")
    elif result.previous is not None and not result.previous.terminal:
        return []  # it moved somewhere this step did not expect; the step that moved it owns it now
    return release_slot(ctx, item)


def release_slot(ctx: StepContext, item: ReplicationItem) -> list[Next]:
    """Free a finished item's slot (or its place in line) and hand it on; nothing more when it held none (an item
    whose job is recorded done had its slot freed before that record: ``worker.steps.poll``)."""
    if item.job_done:
        return []
    pool = pool_of(ctx, item)
    if pool is None or not ctx.data.slots.release(pool.name, item):
        return []
    return grant_slots(ctx, pool)


def fail_permanently(ctx: StepContext, item: ReplicationItem, error: PermanentError, state: ItemState) -> list[Next]:
    """A refusal that trying again cannot change: the item ends in ``state`` with the error's reason."""
    message = str(error)
    if isinstance(error, AuthenticationError):
        ctx.credentials_refused(item.account, error)
        state = ItemState.FAILED  # the account is broken, not the item's request
        message = error.for_account(item.account)
    return finish(ctx, item, state, reason=error.reason, message=message)


def retry_later(
    ctx: StepContext,
    item: ReplicationItem,
    error: RetryableError,
    task: TaskName,
    *,
    budget: bool = True,
    **extra: str | int,
) -> list[Next]:
    """Send ``task`` again after a backoff; after ``retry_max_attempts`` cloud errors the item fails.

    Only the item's own failures count, and only while its account is healthy: a request our side held back (the
    rate limiter, or the account's open circuit during an outage) or that the cloud throttled was not the item's
    fault, and comes back when the wait it named is over, with jitter so held tasks do not all return in the same
    instant. ``budget=False`` never fails the item (a poll of a copy IMS accepted: only IMS says it failed). Every
    countdown is capped at ``retry_max_delay`` or the longest probe interval (a long Retry-After included): a
    countdown longer than the visibility timeout allows would make Redis hand the message out twice.
    """
    s = ctx.settings
    if isinstance(error, (HeldBack, ThrottledError)):
        cause = "held" if isinstance(error, HeldBack) else "throttled"
        wait = min(error.retry_after or s.retry_base_delay, max(s.retry_max_delay, s.probe_max_interval))
        ctx.data.telemetry.record_retry(task.value, cause)
        countdown = min(max(s.retry_max_delay, s.probe_max_interval), wait + ctx.rng.uniform(0, min(wait, 2.0)))
        nexts = [Next.for_item(task, item, countdown, **extra)]
        if isinstance(error, CircuitOpen):  # the probe goes first; the item comes back just after it
            nexts += ensure_probe(ctx, item.account, wait)
        return nexts
    attempts = ctx.data.records.count_error(item.id)
    if budget and attempts > s.retry_max_attempts:
        return finish(
            ctx,
            item,
            ItemState.FAILED,
            reason=ReasonCode.RETRIES_EXHAUSTED,
            message=f"gave up after {attempts - 1} retries; last error: {error}",
        )
    delay = min(s.retry_max_delay, max(error.retry_after or 0.0, ctx.backoff(attempts)))
    ctx.data.telemetry.record_retry(task.value, "transient")
    log.info("item %s: %s; retry %d in %.1fs", item.id, error, attempts, delay)
    return [Next.for_item(task, item, delay, **extra)]
