"""How steps end: a terminal state (freeing the item's slot for the next waiting item) or a retry with backoff."""

from __future__ import annotations

import logging

from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.errors import AuthenticationError, PermanentError, RetryableError
from worker.metrics import record_latency, record_retry
from worker.queues import Task
from worker.ratelimit import RateLimited
from worker.steps.context import Next, Pipeline

log = logging.getLogger("worker.steps")


def grant_slots(p: Pipeline, account: str) -> list[Next]:
    """Give the account's free slots to its oldest waiting items; their submits are what to send next."""
    settings = p.account(account)
    if settings is None:
        return []
    granted = p.slots.admit(account, settings.slot_limit, p.clock())
    return [Next.for_item(Task.SUBMIT, item) for item in p.store.get_items(granted)]


def finish(
    p: Pipeline,
    item: ReplicationItem,
    state: ItemState,
    *,
    reason: ReasonCode | None = None,
    message: str | None = None,
    **fields: object,
) -> list[Next]:
    """Move the item to a terminal state; then its slot (if any) goes to the next waiting item of its account."""
    now = p.clock()
    result = p.store.transition(item.id, state, reason=reason, message=message, now=now, **fields)
    if result.ok:
        # From the item's first acceptance: a retried item's latency includes its earlier attempts.
        record_latency(p.store.redis, p.prefix, state.value, now - item.created_at)
        log.info("item %s %s%s", item.id, state.value, f" ({reason.value}: {message})" if reason else "")
    elif result.previous is not None and not result.previous.terminal:
        return []  # it moved somewhere this step did not expect; the step that moved it owns it now
    if not p.slots.release(item.account, item.id):
        return []
    return grant_slots(p, item.account)


def fail_permanently(p: Pipeline, item: ReplicationItem, error: PermanentError, state: ItemState) -> list[Next]:
    """A refusal that trying again cannot change: the item ends in ``state`` with the error's reason."""
    if isinstance(error, AuthenticationError):
        p.credentials_refused(item.account, error)
        state = ItemState.FAILED  # the account is broken, not the item's request
    return finish(p, item, state, reason=error.reason, message=str(error))


def retry_later(
    p: Pipeline, item: ReplicationItem, error: RetryableError, task: Task, **extra: str | int
) -> list[Next]:
    """Send ``task`` again after a backoff; after ``retry_max_attempts`` cloud errors the item fails.

    Our own limiter's refusals are not counted (no request was sent) and come back after the wait it named, with
    jitter so that refused tasks do not all return in the same instant. Every countdown is capped at
    ``retry_max_delay`` (a long Retry-After included): a countdown longer than the visibility timeout allows would
    make Redis hand the message out twice.
    """
    cap = p.settings.retry_max_delay
    if isinstance(error, RateLimited):
        wait = min(error.retry_after or 1.0, cap / 2)
        record_retry(p.store.redis, p.prefix, task.value, "rate_limited")
        return [Next.for_item(task, item, wait + p.rng.uniform(0, wait), **extra)]
    attempts = p.store.incr_field(item.id, "error_retries")
    if attempts > p.settings.retry_max_attempts:
        return finish(
            p,
            item,
            ItemState.FAILED,
            reason=ReasonCode.RETRIES_EXHAUSTED,
            message=f"gave up after {attempts - 1} retries; last error: {error}",
        )
    delay = min(cap, max(error.retry_after or 0.0, p.backoff(attempts)))
    record_retry(p.store.redis, p.prefix, task.value, "transient")
    log.info("item %s: %s; retry %d in %.1fs", item.id, error, attempts, delay)
    return [Next.for_item(task, item, delay, **extra)]
