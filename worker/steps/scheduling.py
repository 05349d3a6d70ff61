"""Slots: which pool an item's copy counts against, when it may have a slot, and what happens when IMS is full.

The grant itself is one script (``worker/data/lua/grant.lua``): fair between batches, within the pool's limit (lowered
while copies made elsewhere hold IMS's slots), within the image quota, and never while the account's circuit is
open. Here: the pool of an item, reading the quota when the grant says it is stale, and handing an item back to its
line (keeping its place) when the copy call finds IMS full: ``IMG.0060`` (the concurrent-copy limit) or
``IMG.0015`` (the image quota), neither of which says anything is wrong with the item.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from worker.data import Queued, QuotaAge
from worker.domain import pools
from worker.domain.item import ReplicationItem
from worker.domain.pools import Pool
from worker.domain.states import Event, ItemState
from worker.domain.waits import BlockedBy
from worker.errors import ReplicatorError
from worker.ims.models import ImageQuota
from worker.queues import TaskName
from worker.steps.context import Next, StepContext

log = logging.getLogger("worker.steps")

QUOTA_MARGIN_SETS = 4  # headroom for this many sets of slots or less: the quota is read every refresh period
# The IMS code that means "no room now" for the image quota on a copy call (the concurrent-copy limit's:
# ``worker.errors.IMS_FULL_CODES``).
QUOTA_FULL = "IMG.0015"


def pool_named(ctx: StepContext, name: str) -> Pool | None:
    return pools.pool_named(ctx.settings, name)


def item_pool(ctx: StepContext, item: ReplicationItem) -> Pool | None:
    return pools.pool_of(ctx.settings, item)


def grant_slots(ctx: StepContext, pool: Pool | None) -> list[Next]:
    """Grant the pool's free slots; the granted items' submits are what to send next.

    The quota is read before the first grant; again after ``quota_refresh_seconds`` once little room is left (a
    few sets of slots) or IMS refused a copy for it; and, with room to spare, only every ten refresh periods (a
    quota lowered, or images made elsewhere). The grant script says when (``QuotaAge``), so a grant with a fresh
    reading is one round trip. A pool whose copies land in other regions' projects has no quota of its own."""
    if pool is None:
        return []
    age = QuotaAge(ctx.settings.quota_refresh_seconds, QUOTA_MARGIN_SETS * pool.limit)
    granted = ctx.data.slots.grant(pool, ctx.clock(), age)
    if granted.stale:
        read_quota(ctx, pool)
        granted = ctx.data.slots.grant(pool, ctx.clock())  # with what it knows, if the read failed
    return [
        Next.for_ids(TaskName.SUBMIT, item_id, image_id, region)
        for item_id, image_id, region in zip(granted.ids, granted.image_ids, granted.regions, strict=True)
    ]


def read_quota(
    ctx: StepContext, pool: Pool | None, *, read: Callable[[], ImageQuota] | None = None
) -> ImageQuota | None:
    """Read the project's image quota and record it; with ``read``, by the caller's own call (whose errors reach
    it), else by the pool's account (an error is logged: None). Slots granted whose copies IMS may not count yet are
    pending: those granted before the read began (counted first, so that a copy IMS accepts during the read is
    counted at least once) and those granted while it was under way."""
    if pool is None or pool.project is None:
        return None if read is None else read()
    # The grant total first: a grant between the two reads is then counted twice, never missed.
    since = ctx.data.slots.quota(pool.project).granted
    pending = _pending(ctx, pool)
    if read is None:
        try:
            found = ctx.client(pool.account).get_quota()
        except ReplicatorError as error:  # the grant goes on with what it knew; the next one tries again
            log.info("pool %s: image quota not read (%s)", pool.name, error)
            return None
    else:
        found = read()
    ctx.data.slots.set_quota(pool.project, found.quota, found.used, pending, ctx.clock(), granted_since=since)
    return found


def _pending(ctx: StepContext, pool: Pool) -> int:
    holders = ctx.data.records.get_items(ctx.data.slots.holders(pool.name))
    return sum(1 for item in holders if item.state in (ItemState.WAITING, ItemState.SUBMITTING))


def wait_for_slot(ctx: StepContext, item: ReplicationItem, now: float, **fields: object) -> bool:
    """A validated item joins its pool's line (``validated``); False if it had moved on meanwhile."""
    return wait_for_slots(ctx, [(item, fields)], now)[0]


def wait_for_slots(
    ctx: StepContext, validated: list[tuple[ReplicationItem, dict[str, object]]], now: float
) -> list[bool]:
    """Validated items join their pools' lines, each with its fields, in one transaction (after one read of each
    batch's priority); whether each moved (False: it had moved on meanwhile)."""
    strides: dict[str, float] = {}  # a batch's priority, read once for its items
    entries = []
    for item, fields in validated:
        pool = item_pool(ctx, item)
        assert pool is not None, item.account  # validation refuses items of unknown accounts first
        if item.batch_id not in strides:
            strides[item.batch_id] = ctx.data.records.priority(item.batch_id).stride
        entries.append(Queued(item, pool, strides[item.batch_id], {"error_retries": 0, **fields}))
    return ctx.data.wait_for_slots(entries, now)


def waits_for_quota(ctx: StepContext, item: ReplicationItem) -> bool:
    """Whether the item waits for image quota when IMS has none (its pool's quota is known: in-region copies);
    a cross-region copy refused for its destination's quota fails instead."""
    pool = item_pool(ctx, item)
    return pool is not None and pool.project is not None


def hand_back(ctx: StepContext, item: ReplicationItem, error: ReplicatorError) -> list[Next]:
    """IMS had no room for the copy: the item goes back to its row's place in its line, and its pool grants less
    (``IMG.0060``: slots held elsewhere, probed back up) or waits for quota (``IMG.0015``: a grant is due when the
    quota is read again). Either way a timed grant is what to send next."""
    pool = item_pool(ctx, item)
    if pool is None:
        return []
    now = ctx.clock()
    s = ctx.settings
    stride = ctx.data.records.priority(item.batch_id).stride
    moved = ctx.data.wait_for_slot(
        item, Event.HAND_BACK, pool, stride, now, arrival=item.queued_at or now, submit_started_at=None
    )
    if not moved.ok:
        return []
    if error.code == QUOTA_FULL and pool.project is not None:  # (waits_for_quota said so)
        # A grant reads the quota again a refresh period from now: with no copy of the pool left to end, nothing else
        # would look before the reconciler. Its countdown is capped like every other (the visibility timeout), and the
        # reading is dated so that it is due when that grant runs.
        wait = min(s.quota_refresh_seconds, s.longest_countdown)
        ctx.data.slots.exhaust_quota(pool.project, now, checked_at=now + wait - s.quota_refresh_seconds)
        log.info("item %s: image quota of %s is full; read again in %.0fs", item.id, pool.project, wait)
        return [Next(TaskName.GRANT, {"pool": pool.name, "blocked_by": BlockedBy.QUOTA.value}, wait)]
    wait = ctx.data.slots.lower_capacity(pool.name, now, s.probe_interval, s.probe_max_interval)
    log.info("item %s: IMS says %s is full (copies made elsewhere?); one more slot in %.0fs", item.id, pool.name, wait)
    # Nothing else may free a slot of this pool meanwhile: a grant task is due when the next slot may be tried.
    return [Next(TaskName.GRANT, {"pool": pool.name, "blocked_by": BlockedBy.IMS_FULL.value}, wait)]


def grant(ctx: StepContext, pool: str) -> list[Next]:
    """A timed grant (``replication.grant``): one more try at the pool's free slots."""
    return grant_slots(ctx, pool_named(ctx, pool))
