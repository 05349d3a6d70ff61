"""How steps end: a terminal state (freeing the item's slot for the next waiting item) or a retry with backoff."""

from __future__ import annotations

import logging

from worker.domain.followups import Kind
from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.states import ENDING, ItemState
from worker.errors import AuthenticationError, PermanentError, RetryableError, ThrottledError
from worker.queues import TaskName
from worker.ratelimit import CircuitOpen, HeldBack
from worker.steps.context import Next, StepContext
from worker.steps.probe import ensure_probe
from worker.steps.scheduling import grant_slots, item_pool

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
    # Only the last of a parent's children to end wakes it (the move counts them down: move.lua's open_children).
    last = result.open_siblings is None or result.open_siblings <= 0
    return release_slot(ctx, item) + (_wake_parent(ctx, item) if result.ok and last else [])


def _wake_parent(ctx: StepContext, item: ReplicationItem) -> list[Next]:
    """The last of the items a distribution made (receiver items, cross-region carriers) to end has its parent look
    at its receivers now rather than at its next look, ``poll_max_interval`` away (docs/architecture.md "A
    distribution"); the others' ends leave it be, where each used to wake it for a look at all of them. The wake may
    take the parent's chain over, as a redelivered message may: the parent's own look may be under way, and the
    last end must not be missed; the chain's claim lets one of them go on, and the message the chain waited for is
    then a stale one."""
    parent = ctx.data.records.get_item(item.parent_id) if item.parent_id else None
    if parent is None or parent.state is not ItemState.FINISHING or parent.followups is None:
        return []
    if parent.followups.next_kind() is not Kind.DISTRIBUTE:
        return []
    return [Next.for_item(TaskName.DISTRIBUTE, parent, seq=parent.poll_seq or 0, redelivered=1)]


def release_slot(ctx: StepContext, item: ReplicationItem) -> list[Next]:
    """Free a finished item's slot (or its place in line) and hand it on; nothing more when it held none (an item
    whose job is recorded done had its slot freed before that record: ``worker.steps.poll``)."""
    if item.job_done:
        return []
    pool = item_pool(ctx, item)
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
    """Send ``task`` again after a backoff, spending one of the item's ``retry_max_attempts`` retries; an error that
    finds none left fails the item.

    Only the item's own failures spend a retry, and only while its account is healthy: a request our side held back
    (the rate limiter, or the account's open circuit during an outage), that the cloud throttled, or that failed
    while the account's circuit is open (the failure that opened it, or a probe) was not the item's fault, and comes
    back when the wait it named is over (an outage's: just after the next probe), with jitter so held tasks do not
    all return in the same instant. The retry is checked and spent in one step (``RecordStore.spend_retry``), so
    deliveries failing side by side never spend more than the budget. ``budget=False`` never fails the item (a poll
    of a copy IMS accepted: only IMS says it failed; a follow-up, whose step checks its own budget): with its
    retries spent it goes on at the longest backoff. Every countdown is capped at ``retry_max_delay`` or the longest
    probe interval (a long Retry-After included): a countdown longer than the visibility timeout allows would make
    Redis hand the message out twice.
    """
    s = ctx.settings
    if isinstance(error, (HeldBack, ThrottledError)):
        cause = "held" if isinstance(error, HeldBack) else "throttled"
        wait = error.retry_after or s.retry_base_delay
        return _come_back(ctx, item, task, wait, cause, probe=isinstance(error, CircuitOpen), **extra)
    now = ctx.clock()
    health = ctx.data.accounts.health(item.account, now)
    if health.open:  # an outage, not the item: the probe goes first
        wait = max(0.0, (health.probe_at or now) - now) or s.retry_base_delay
        return _come_back(ctx, item, task, wait, "transient", probe=True, **extra)
    spent = ctx.data.records.spend_retry(item.id, s.retry_max_attempts)
    if spent is None and budget:
        return finish(
            ctx,
            item,
            ItemState.FAILED,
            reason=ReasonCode.RETRIES_EXHAUSTED,
            message=f"gave up after {s.retry_max_attempts} retries; last error: {error}",
        )
    attempt = s.retry_max_attempts + 1 if spent is None else spent
    delay = min(s.retry_max_delay, max(error.retry_after or 0.0, ctx.backoff(attempt)))
    ctx.data.telemetry.record_retry(task.value, "transient")
    log.info("item %s: %s; retry %d in %.1fs", item.id, error, attempt, delay)
    return [Next.for_item(task, item, delay, **extra)]


def _come_back(
    ctx: StepContext, item: ReplicationItem, task: TaskName, wait: float, cause: str, *, probe: bool, **extra: str | int
) -> list[Next]:
    """``task`` again after ``wait`` (with jitter, capped) and no retry spent; with ``probe``, the probe first."""
    s = ctx.settings
    longest = max(s.retry_max_delay, s.probe_max_interval)
    wait = min(wait, longest)
    ctx.data.telemetry.record_retry(task.value, cause)
    nexts = [Next.for_item(task, item, min(longest, wait + ctx.rng.uniform(0, min(wait, 2.0))), **extra)]
    if probe:  # the probe goes first; the item comes back just after it
        nexts += ensure_probe(ctx, item.account, wait)
    return nexts
