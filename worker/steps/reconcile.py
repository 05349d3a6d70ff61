"""Reconcile: resend the steps that are overdue, keep the slot pools true to the items, wake what waits on time.

Runs every ``reconcile_interval`` (Celery beat). Every message a step sends records when it is due, and every task
marks its item as worked on until its hard time limit (``worker.steps.expect``, ``worker.dispatch``), so an item's due
time says when something should next happen to it. A step more than ``stall_seconds`` past its due time was lost
(its worker died holding it, Redis lost it in a failover), and so was an item's step due before the reconciler met a
new Redis server process (a failover, a restart), running or not. It is sent again, once per due time (sending it
records a new one), and only while its stage's queue is empty (in a deep queue a message may legitimately wait past
its due time). A batch's admit chain is watched the same way: one lost chunk is one resend, never one per item; a
selector whose next listing page, or a plan whose next stage, has made no progress is sent again
(``worker.steps.select``: a page stored twice adds nothing). Per pool: slots held by finished, missing or finishing
items are freed (a copy's follow-ups hold no slot), and those of waiting items with no step due and no live submit
lock go back to the pool (the item to its place in line); ``submitting``/``replicating`` items whose slot entry was
lost get it back, free slots are granted; per account: an open circuit has a probe scheduled, and items that waited for
image quota longer than ``quota_wait_seconds`` fail. Work per pass is bounded (``MAX_RESENDS``); every repair is
counted for ``/metrics``.
"""

from __future__ import annotations

import logging
from collections import Counter

from worker import registry
from worker.domain.followups import Kind
from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.queues import Queue, TaskName
from worker.steps.context import Next, StepContext
from worker.steps.outcomes import finish
from worker.steps.probe import ensure_probe
from worker.steps.scheduling import grant_slots, item_pool, pool_named

log = logging.getLogger("worker.reconcile")

MAX_RESENDS = 2_000  # overdue steps looked at per pass; the rest wait for the next pass
MAX_SLOTTED = 20_000  # submitting/replicating items checked for their slot entry per pass
_SLOTTED = frozenset({ItemState.WAITING, ItemState.SUBMITTING, ItemState.REPLICATING})


def reconcile(ctx: StepContext) -> list[Next]:
    repairs: Counter[str] = Counter()
    backlog = {queue: ctx.data.telemetry.queue_backlog(queue.value) for queue in Queue}
    nexts = _overdue_admits(ctx, backlog, repairs) + _overdue_steps(ctx, backlog, repairs)
    # A listing page may run up to the hard time limit: only a selector quiet for longer has lost its next page.
    for batch_id, marker in ctx.data.selections.stalled(_cutoff(ctx) - ctx.settings.task_time_limit, limit=MAX_RESENDS):
        nexts.append(Next(TaskName.EXPAND, {"batch_id": batch_id, "marker": marker}))
        repairs["expand_resent"] += 1
    for plan_id, stage, marker in ctx.data.plans.stalled(
        _cutoff(ctx) - ctx.settings.task_time_limit, limit=MAX_RESENDS
    ):
        nexts.append(Next(TaskName.PLAN, {"plan_id": plan_id, "stage": stage, "marker": marker}))
        repairs["plan_resent"] += 1
    _restore_slots(ctx, repairs)
    granting = []
    for name in sorted(ctx.data.slots.pools(ctx.settings.accounts)):
        _free_slots(ctx, name, repairs)
        if (pool := pool_named(ctx, name)) is not None:
            nexts += _expire_quota_waits(ctx, name, repairs)
            granting.append(pool)
    # A grant may read its project's quota first (one call each, at start-up for every pool): side by side, not a
    # pool process held for 200 round trips while the first copies wait for it.
    for granted in ctx.each(lambda pool: grant_slots(ctx, pool), granting):
        nexts += granted
    for account in ctx.settings.accounts:
        health = ctx.data.accounts.health(account, ctx.clock())
        if health.open:
            nexts += ensure_probe(ctx, account, max(0.0, (health.probe_at or 0.0) - ctx.clock()))
    if repairs:
        ctx.data.telemetry.record_repairs(repairs)
        log.warning("reconciler repaired %s", dict(repairs))
    return nexts


def _cutoff(ctx: StepContext) -> float:
    return ctx.clock() - ctx.settings.stall_seconds


def _item_cutoff(ctx: StepContext) -> float:
    """Item steps due before this are lost: ``stall_seconds`` ago (a margin for messages that are merely late), or
    when the reconciler met a new Redis server process (a failover, a restart) if that is later. The new server
    lacks the messages the old one had not passed on, and the margin would idle their items for nothing; a resend
    of one that was only late ends itself (polls by their sequence number, submits by their lock and attempt).

    The pass that meets the new server also takes every step marked as running for lost (a running task marks its
    item until its hard time limit): its worker may have died with the old server, or the failover lost what it
    wrote; a resend of one still running ends itself the same way. Only that pass: the resends' own due times
    belong to the new server."""
    now = ctx.clock()
    replaced = ctx.data.control.replaced_at(now)
    if replaced == now:
        return now + ctx.settings.task_time_limit
    return max(_cutoff(ctx), replaced)


def _overdue_admits(ctx: StepContext, backlog: dict[Queue, int], repairs: Counter[str]) -> list[Next]:
    if backlog[Queue.ADMIT]:
        return []
    nexts = []
    for batch_id, cursor in ctx.data.records.overdue_admits(_cutoff(ctx), limit=MAX_RESENDS):
        nexts.append(Next(TaskName.ADMIT, {"batch_id": batch_id, "cursor": cursor}))
        repairs["admit_resent"] += 1
    return nexts


def _overdue_steps(ctx: StepContext, backlog: dict[Queue, int], repairs: Counter[str]) -> list[Next]:
    nexts: list[Next] = []
    settled: list[str] = []
    overdue = ctx.data.records.overdue(_item_cutoff(ctx), limit=MAX_RESENDS)
    waiting = [item for item, _ in overdue if item is not None and item.state is ItemState.WAITING]
    holding = dict(zip((i.id for i in waiting), _holding(ctx, waiting), strict=True))
    for item, item_id in overdue:
        task = _step_of(item) if item is not None else None
        if item is None or task is None or (item.state is ItemState.WAITING and not holding[item.id]):
            settled.append(item_id)  # finished, gone, or waiting in line: nothing of its own is due
            continue
        if backlog[registry.ROUTES[task]]:
            continue  # its message may be in that queue still
        extra = {"seq": item.poll_seq or 0} if registry.STEPS[task].sequenced else {}
        nexts.append(Next.for_item(task, item, **extra))
        repairs[f"{task.value.rsplit('.', 1)[1]}_resent"] += 1
    ctx.data.records.forget_due(settled)
    return nexts


def _step_of(item: ReplicationItem) -> TaskName | None:
    """The step an overdue item waits for (``worker.registry``); a finishing item's is its next follow-up (tags,
    then sharing)."""
    if item.state is ItemState.FINISHING:
        kind = item.followups.next_kind() if item.followups else None
        return registry.followup_task(kind or Kind.TAGS)
    return registry.resend_for(item.state)


def _holding(ctx: StepContext, items: list[ReplicationItem]) -> list[bool]:
    """Whether each item holds a slot of its pool (an item whose account is gone: of a pool named after it)."""
    names = [pool.name if (pool := item_pool(ctx, item)) else item.account for item in items]
    return ctx.data.slots.holding(list(zip(names, items, strict=True)))


def _restore_slots(ctx: StepContext, repairs: Counter[str]) -> None:
    """An item past its grant whose slot entry was lost (Redis lost a write) gets it back."""
    items = [
        item
        for state in (ItemState.SUBMITTING, ItemState.REPLICATING)
        for item in ctx.data.records.in_state(state, limit=MAX_SLOTTED)
        if not item.job_done  # its job ended: it holds no slot while its new image is looked at
    ]
    by_pool: dict[str, list[str]] = {}
    for item, held in zip(items, _holding(ctx, items), strict=True):
        pool = item_pool(ctx, item)
        if not held and pool is not None:
            by_pool.setdefault(pool.name, []).append(item.id)
    for pool, ids in by_pool.items():
        repairs["slot_restored"] += ctx.data.slots.restore(pool, ids, ctx.clock())


def _free_slots(ctx: StepContext, pool: str, repairs: Counter[str]) -> None:
    holders = ctx.data.slots.holders(pool)
    found = {item.id: item for item in ctx.data.records.get_items(holders)}
    granted = []
    for item_id in holders:
        item = found.get(item_id)
        if item is None or item.state not in _SLOTTED:
            ctx.data.slots.free(pool, item_id)
            repairs["slot_freed"] += 1
        elif item.state is ItemState.WAITING:
            granted.append(item)
    _hand_on(ctx, pool, granted, repairs)


def _hand_on(ctx: StepContext, pool: str, granted: list[ReplicationItem], repairs: Counter[str]) -> None:
    """Waiting items granted a slot whose submit nothing will send (no step due, no live submit lock: its due time
    was lost, or a lease outlived its task) go back to their place in line, so the slot is granted on (issue 25).
    A lost submit that is merely overdue is not one of them: it is resent (``_overdue_steps``)."""
    resolved = pool_named(ctx, pool)
    if resolved is None:
        return
    for item in granted:
        stride = ctx.data.records.priority(item.batch_id).stride
        if ctx.data.slots.hand_on(resolved, item, stride, ctx.clock()):
            log.warning("item %s held a slot of %s with nothing due; handed it on", item.id, pool)
            repairs["slot_handed_on"] += 1


def _expire_quota_waits(ctx: StepContext, pool: str, repairs: Counter[str]) -> list[Next]:
    """Items that waited for image quota longer than ``quota_wait_seconds`` fail with ``QUOTA_EXCEEDED``."""
    resolved = pool_named(ctx, pool)
    if resolved is None:
        return []
    quota = ctx.data.slots.quota(resolved.project)
    waited = ctx.clock() - (quota.blocked_since or ctx.clock())
    if quota.headroom != 0 or waited < ctx.settings.quota_wait_seconds:
        return []
    message = f"no room in the image quota of project {resolved.project} for {waited:.0f}s"
    nexts: list[Next] = []
    for item in ctx.data.records.get_items(ctx.data.slots.queued_items(pool)):
        if item.state is ItemState.WAITING:
            nexts += finish(ctx, item, ItemState.FAILED, reason=ReasonCode.QUOTA_EXCEEDED, message=message)
            repairs["quota_wait_expired"] += 1
    return nexts
