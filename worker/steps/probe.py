"""An account in an outage: one probe at a time finds out when the cloud answers again; then its slots are granted.

While an account's circuit is open (``worker/ratelimit.py``), steps that meet it come back later without spending
their retries, and one ``replication.probe`` task per account makes one cheap signed read when the next probe is
due. Its answer closes the circuit (the waiting items' grants follow at once) or pushes the next probe further
out, up to the longest probe interval. A timed ``replication.grant`` tries one more slot of a pool that IMS said
was full, when its probe interval is over (``worker.steps.scheduling.grant``).
"""

from __future__ import annotations

import logging

from worker.domain.pools import Pool
from worker.domain.states import ItemState
from worker.domain.waits import BlockedBy
from worker.errors import ReplicatorError
from worker.queues import TaskName
from worker.ratelimit import CircuitOpen
from worker.steps.context import Next, StepContext
from worker.steps.scheduling import grant_slots, pool_named

log = logging.getLogger("worker.steps")


def ensure_probe(ctx: StepContext, account: str, wait: float) -> list[Next]:
    """A probe task for the account in ``wait`` seconds, unless one is already scheduled."""
    if not ctx.data.accounts.schedule_probe(account, wait):
        return []
    return [Next(TaskName.PROBE, {"account": account, "blocked_by": BlockedBy.OUTAGE.value}, wait)]


def probe(ctx: StepContext, account: str) -> list[Next]:
    if ctx.account(account) is None:
        return []
    pool = pool_named(ctx, account)
    if ctx.data.accounts.health(account, ctx.clock()).open:
        try:
            ctx.client(account).get_quota()  # any signed read: the circuit lets it through as the probe
        except CircuitOpen as held:  # not due yet, or another request is the probe
            return _next_probe(ctx, account, held.retry_after or ctx.settings.probe_interval)
        except ReplicatorError as error:
            health = ctx.data.accounts.health(account, ctx.clock())
            if health.open:
                log.info("account %s: probe failed (%s)", account, error)
                wait = (health.probe_at or ctx.clock()) - ctx.clock()
                return _next_probe(ctx, account, max(wait, ctx.settings.probe_interval))
        log.warning("account %s: the cloud answers again; resuming its copies", account)
        return _resume(ctx, pool) + grant_slots(ctx, pool)
    return grant_slots(ctx, pool)


def _resume(ctx: StepContext, pool: Pool | None) -> list[Next]:
    """The steps of the pool's slot holders, at once: their own messages were put off until after the probe, and a
    copy that finished during the outage frees its slot as soon as a poll sees it (duplicates end themselves)."""
    if pool is None:
        return []
    nexts = []
    for item in ctx.data.records.get_items(ctx.data.slots.holders(pool.name)):
        if item.state is ItemState.REPLICATING:
            nexts.append(Next.for_item(TaskName.POLL, item, seq=item.poll_seq or 0))
        elif item.state in (ItemState.WAITING, ItemState.SUBMITTING):
            nexts.append(Next.for_item(TaskName.SUBMIT, item))
    return nexts


def _next_probe(ctx: StepContext, account: str, wait: float) -> list[Next]:
    ctx.data.accounts.schedule_probe(account, wait, renew=True)  # the claim lasts until this probe is due
    return [Next(TaskName.PROBE, {"account": account, "blocked_by": BlockedBy.OUTAGE.value}, wait)]
