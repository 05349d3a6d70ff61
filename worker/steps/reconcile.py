"""Reconcile: find items whose next step was lost and send it again; keep the slot pool true to the items.

Runs every ``reconcile_interval`` (Celery beat). An item is stalled when it has not changed for ``stall_seconds``,
and for longer than a step can legitimately keep it quiet (the longest countdown plus the hard time limit: a long
copy's polls may be minutes apart):
``accepted``/``validating`` -> validate again (only while the validate queue is empty: in a deep queue a
message can legitimately wait longer than that); ``waiting`` with a slot -> submit; ``waiting`` without one -> back
into its pool's queue if it fell out; ``submitting`` -> submit (which looks for the copy before copying);
``replicating`` -> poll; ``finishing`` -> its next follow-up (tags, sharing). Slots held by terminal, missing,
not-yet-valid or finishing items are freed; a ``submitting`` or ``replicating`` item whose slot entry was lost gets
it back; then free slots go to waiting items. A selector whose next listing page has made no progress for as long
is sent again (``worker.steps.select``: a page stored twice adds nothing), and so is a plan's stage. Each kind of
repair is counted for ``/metrics``.
"""

from __future__ import annotations

import logging
from collections import Counter

from worker.domain.item import ReplicationItem
from worker.domain.pools import pool_of
from worker.domain.states import ItemState
from worker.queues import Queue, TaskName
from worker.steps.context import Next, StepContext
from worker.steps.followup import TASKS
from worker.steps.outcomes import grant_slots

log = logging.getLogger("worker.reconcile")

MAX_SCAN = 20_000  # items of one state looked at per run; the rest wait for the next run
_SLOTTED = frozenset({ItemState.WAITING, ItemState.SUBMITTING, ItemState.REPLICATING})


def reconcile(ctx: StepContext) -> list[Next]:
    s = ctx.settings
    cutoff = ctx.clock() - max(s.stall_seconds, s.longest_quiet)
    repairs: Counter[str] = Counter()
    nexts: list[Next] = []
    if ctx.data.telemetry.queue_backlog(Queue.VALIDATE.value) == 0:
        for state in (ItemState.ACCEPTED, ItemState.VALIDATING):
            for item in _stalled(ctx, state, cutoff):
                nexts.append(Next.for_item(TaskName.VALIDATE, item))
                repairs["validate_resent"] += 1
    for batch_id, marker in ctx.data.selections.stalled(cutoff, limit=MAX_SCAN):
        nexts.append(Next(TaskName.EXPAND, {"batch_id": batch_id, "marker": marker}))
        repairs["expand_resent"] += 1
    for plan_id, stage, marker in ctx.data.plans.stalled(cutoff, limit=MAX_SCAN):
        nexts.append(Next(TaskName.PLAN, {"plan_id": plan_id, "stage": stage, "marker": marker}))
        repairs["plan_resent"] += 1
    nexts += _waiting(ctx, cutoff, repairs)
    for item in _stalled(ctx, ItemState.SUBMITTING, cutoff):
        nexts.append(Next.for_item(TaskName.SUBMIT, item))
        repairs["submit_resent"] += 1
    for item in _stalled(ctx, ItemState.REPLICATING, cutoff):
        nexts.append(Next.for_item(TaskName.POLL, item, seq=item.poll_seq or 0))
        repairs["poll_resent"] += 1
    for item in _stalled(ctx, ItemState.FINISHING, cutoff):
        kind = item.followups.next_kind() if item.followups else None
        nexts.append(Next.for_item(TASKS[kind] if kind else TaskName.TAG, item, seq=item.poll_seq or 0))
        repairs["followup_resent"] += 1
    _restore_slots(ctx, repairs)
    for pool in sorted(ctx.data.slots.accounts(ctx.settings.accounts)):
        _free_slots(ctx, pool, repairs)
        nexts += grant_slots(ctx, pool)
    if repairs:
        ctx.data.telemetry.record_repairs(repairs)
        log.warning("reconciler repaired %s", dict(repairs))
    return nexts


def _stalled(ctx: StepContext, state: ItemState, cutoff: float) -> list[ReplicationItem]:
    return ctx.data.records.stalled(state, cutoff, limit=MAX_SCAN)


def _waiting(ctx: StepContext, cutoff: float, repairs: Counter[str]) -> list[Next]:
    nexts = []
    items = _stalled(ctx, ItemState.WAITING, cutoff)
    for item, holds_slot in zip(items, ctx.data.slots.holding(items), strict=True):
        if holds_slot:  # granted a slot, but its submit never ran
            nexts.append(Next.for_item(TaskName.SUBMIT, item))
            repairs["submit_resent"] += 1
        elif ctx.data.slots.enqueue(pool_of(item), item.id, item.updated_at):
            repairs["requeued_waiting"] += 1
    return nexts


def _restore_slots(ctx: StepContext, repairs: Counter[str]) -> None:
    for state in (ItemState.SUBMITTING, ItemState.REPLICATING):
        for item in ctx.data.records.in_state(state, limit=MAX_SCAN):
            if ctx.data.slots.restore(pool_of(item), item.id, ctx.clock()):
                repairs["slot_restored"] += 1


def _free_slots(ctx: StepContext, pool: str, repairs: Counter[str]) -> None:
    holders = ctx.data.slots.holders(pool)
    states = {item.id: item.state for item in ctx.data.records.get_items(holders)}
    for item_id in holders:
        if states.get(item_id) not in _SLOTTED:
            ctx.data.slots.release(pool, item_id)
            repairs["slot_freed"] += 1
