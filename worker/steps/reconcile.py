"""Reconcile: find items whose next step was lost and send it again; keep the slot pool true to the items.

Runs every ``reconcile_interval`` (Celery beat). An item is stalled when it has not changed for ``stall_seconds``,
and for longer than a step can legitimately keep it quiet (the longest countdown plus the hard time limit: a long
copy's polls may be minutes apart):
``accepted``/``validating`` -> validate again (only while the validate queue is empty: in a deep queue a
message can legitimately wait longer than that); ``waiting`` with a slot -> submit; ``waiting`` without one -> back
into its account's queue if it fell out; ``submitting`` -> submit (which looks for the copy before copying);
``replicating`` -> poll. Slots held by terminal, missing or not-yet-valid items are freed; a ``submitting`` or
``replicating`` item whose slot entry was lost gets it back; then free slots go to waiting items.

Redis keys (``P`` is the key prefix)::

    P:repairs   hash  kind -> number of repairs of that kind since the store was created (for /metrics)
"""

from __future__ import annotations

import logging
from collections import Counter

from worker.domain.item import ReplicationItem
from worker.domain.states import ItemState
from worker.queues import Queue, Task
from worker.steps.context import Next, Pipeline
from worker.steps.outcomes import grant_slots

log = logging.getLogger("worker.reconcile")

PAGE = 1000
MAX_SCAN = 20_000  # items of one state looked at per run; the rest wait for the next run
_SLOTTED = frozenset({ItemState.WAITING, ItemState.SUBMITTING, ItemState.REPLICATING})


def reconcile(p: Pipeline) -> list[Next]:
    s = p.settings
    cutoff = p.clock() - max(s.stall_seconds, s.longest_quiet)
    repairs: Counter[str] = Counter()
    nexts: list[Next] = []
    if p.store.redis.llen(Queue.VALIDATE.value) == 0:
        for state in (ItemState.ACCEPTED, ItemState.VALIDATING):
            for item in _stalled(p, state, cutoff):
                nexts.append(Next.for_item(Task.VALIDATE, item))
                repairs["validate_resent"] += 1
    nexts += _waiting(p, cutoff, repairs)
    for item in _stalled(p, ItemState.SUBMITTING, cutoff):
        nexts.append(Next.for_item(Task.SUBMIT, item))
        repairs["submit_resent"] += 1
    for item in _stalled(p, ItemState.REPLICATING, cutoff):
        nexts.append(Next.for_item(Task.POLL, item, seq=item.poll_seq or 0))
        repairs["poll_resent"] += 1
    _restore_slots(p, repairs)
    for account in sorted(p.slots.accounts(p.settings.accounts)):
        _free_slots(p, account, repairs)
        nexts += grant_slots(p, account)
    if repairs:
        pipe = p.store.redis.pipeline(transaction=False)
        for kind, count in repairs.items():
            pipe.hincrby(f"{p.prefix}:repairs", kind, count)
        pipe.execute()
        log.warning("reconciler repaired %s", dict(repairs))
    return nexts


def _pages(p: Pipeline, state: ItemState, before: float) -> list[list[ReplicationItem]]:
    key = p.store.state_key(state)
    pages = []
    for start in range(0, MAX_SCAN, PAGE):
        ids = p.store.redis.zrangebyscore(key, "-inf", before, start=start, num=PAGE)
        if not ids:
            break
        pages.append(p.store.get_items([i.decode() if isinstance(i, bytes) else i for i in ids]))
    return pages


def _stalled(p: Pipeline, state: ItemState, cutoff: float) -> list[ReplicationItem]:
    return [i for page in _pages(p, state, cutoff) for i in page if i.state is state and i.updated_at < cutoff]


def _waiting(p: Pipeline, cutoff: float, repairs: Counter[str]) -> list[Next]:
    nexts = []
    for page in _pages(p, ItemState.WAITING, cutoff):
        pipe = p.store.redis.pipeline(transaction=False)
        for item in page:
            pipe.zscore(p.slots.slots_key(item.account), item.id)
        holding = pipe.execute()
        for item, slot in zip(page, holding, strict=True):
            if item.state is not ItemState.WAITING or item.updated_at >= cutoff:
                continue
            if slot is not None:  # granted a slot, but its submit never ran
                nexts.append(Next.for_item(Task.SUBMIT, item))
                repairs["submit_resent"] += 1
            elif p.store.redis.zadd(p.slots.wait_key(item.account), {item.id: item.updated_at}, nx=True):
                repairs["requeued_waiting"] += 1
    return nexts


def _restore_slots(p: Pipeline, repairs: Counter[str]) -> None:
    for state in (ItemState.SUBMITTING, ItemState.REPLICATING):
        for page in _pages(p, state, float("inf")):
            for item in page:
                if item.state is state and p.slots.restore(item.account, item.id, p.clock()):
                    repairs["slot_restored"] += 1


def _free_slots(p: Pipeline, account: str, repairs: Counter[str]) -> None:
    holders = p.slots.holders(account)
    states = {item.id: item.state for item in p.store.get_items(holders)}
    for item_id in holders:
        if states.get(item_id) not in _SLOTTED:
            p.slots.release(account, item_id)
            repairs["slot_freed"] += 1
