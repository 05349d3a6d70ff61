"""How steps end: a terminal state (freeing the item's slot for the next waiting item) or a retry with backoff."""

from __future__ import annotations

import logging

from worker.domain.item import ReplicationItem
from worker.domain.pools import pool_of, slot_limit
from worker.domain.reasons import ReasonCode
from worker.domain.states import ENDING, ItemState
from worker.errors import AuthenticationError, PermanentError, RetryableError
from worker.queues import TaskName
from worker.ratelimit import RateLimited
from worker.steps.context import Next, StepContext

log = logging.getLogger("worker.steps")


def grant_slots(ctx: StepContext, pool: str) -> list[Next]:
    """Give the pool's free slots (``worker.domain.pools``) to its oldest waiting items; their submits are what to
    send next."""
    limit = slot_limit(ctx.settings, pool)
    if limit is None:
        return []
    granted = ctx.data.slots.grant(pool, limit, ctx.clock())
    return [Next.for_item(TaskName.SUBMIT, item) for item in ctx.data.records.get_items(granted)]


def finish(
    ctx: StepContext,
    item: ReplicationItem,
    state: ItemState,
    *,
    reason: ReasonCode | None = None,
    message: str | None = None,
    **fields: object,
) -> list[Next]:
    """Move the item to a terminal state; then its slot (if any) goes to the next waiting item of its account."""
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
    """Free a finished item's slot and hand it on; nothing when it held none."""
    pool = pool_of(item)
    if not ctx.data.slots.release(pool, item.id):
        return []
    return grant_slots(ctx, pool)


def fail_permanently(ctx: StepContext, item: ReplicationItem, error: PermanentError, state: ItemState) -> list[Next]:
    """A refusal that trying again cannot change: the item ends in ``state`` with the error's reason."""
    if isinstance(error, AuthenticationError):
        ctx.credentials_refused(item.account, error)
        state = ItemState.FAILED  # the account is broken, not the item's request
    return finish(ctx, item, state, reason=error.reason, message=str(error))


def retry_later(
    ctx: StepContext, item: ReplicationItem, error: RetryableError, task: TaskName, **extra: str | int
) -> list[Next]:
    """Send ``task`` again after a backoff; after ``retry_max_attempts`` cloud errors the item fails.

    Our own limiter's refusals are not counted (no request was sent) and come back after the wait it named, with
    jitter so that refused tasks do not all return in the same instant. Every countdown is capped at
    ``retry_max_delay`` (a long Retry-After included): a countdown longer than the visibility timeout allows would
    make Redis hand the message out twice.
    """
    cap = ctx.settings.retry_max_delay
    if isinstance(error, RateLimited):
        wait = min(error.retry_after or 1.0, cap / 2)
        ctx.data.telemetry.record_retry(task.value, "rate_limited")
        return [Next.for_item(task, item, wait + ctx.rng.uniform(0, wait), **extra)]
    attempts = ctx.data.records.count_error(item.id)
    if attempts > ctx.settings.retry_max_attempts:
        return finish(
            ctx,
            item,
            ItemState.FAILED,
            reason=ReasonCode.RETRIES_EXHAUSTED,
            message=f"gave up after {attempts - 1} retries; last error: {error}",
        )
    delay = min(cap, max(error.retry_after or 0.0, ctx.backoff(attempts)))
    ctx.data.telemetry.record_retry(task.value, "transient")
    log.info("item %s: %s; retry %d in %.1fs", item.id, error, attempts, delay)
    return [Next.for_item(task, item, delay, **extra)]
