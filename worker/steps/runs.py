"""Runs: each due policy's run started once cluster-wide, as a selector batch (``replication.start_runs``, sent by
beat every ``policy_tick_seconds`` and by the API's run now).

A due run is first claimed (``worker.data.policies``: one script advances the policy's run number only if it is
due and still at the number read, so two ticks never both take it), then its batch is created exactly as the API
creates a selector batch, with an idempotency key of the policy and run (``run_key``): a tick that dies between the
two, or runs twice, finds the batch the first made. The run stays due until its batch is recorded, so the next
tick finishes what a lost one began. Its first message is the selection's first page (``replication.expand``);
should that be lost, the reconciler resends a selection that makes no progress, as for any batch.

While the previous run's batch has not finished, a due run waits (``overlap: wait``, looked at again each tick)
or is recorded as skipped (``skip``). So no run starts while copies of the one before are still being made and
tagged: the tags that the next run reads (``worker.steps.select``) are on every copy of a finished run.
"""

from __future__ import annotations

import logging

from worker.data import Claim, Run
from worker.domain.policy import Overlap, Policy, run_key
from worker.queues import TaskName
from worker.steps.context import Next, StepContext

log = logging.getLogger("worker.runs")

DUE_PER_TICK = 100  # policies looked at per tick; the rest are still due at the next one


def start_runs(ctx: StepContext) -> list[Next]:
    now = ctx.clock()
    nexts: list[Next] = []
    for policy in ctx.data.policies.due(now, limit=DUE_PER_TICK):
        nexts += start_run(ctx, policy, now)
    return nexts


def start_run(ctx: StepContext, policy: Policy, now: float) -> list[Next]:
    """Start the policy's due run (or finish starting a claimed one); its first message, or nothing."""
    run = policy.starting
    if run is None:
        running = _unfinished(ctx, policy)
        if running is not None and policy.definition.overlap is Overlap.WAIT:
            return []  # still due: the next tick looks again
        next_run_at = policy.definition.schedule.next_after(now)
        skipped = None if running is None else f"the previous run's batch {running} had not finished"
        run = ctx.data.policies.claim(policy, now, next_run_at, skipped=skipped)
        if run is None or skipped is not None:
            if run is not None:
                log.info("policy %s: run %d skipped (%s)", policy.id, run, skipped)
            return []
    claimed = ctx.data.policies.run(policy.id, run)
    started_at = claimed.at if claimed is not None else now
    batch_id = _create_batch(ctx, policy, run, started_at)
    if ctx.data.policies.record(policy.id, Run(run, started_at, batch_id=batch_id)):
        log.info("policy %s: run %d started, batch %s", policy.id, run, batch_id)
    nexts = [Next(TaskName.EXPAND, {"batch_id": batch_id})]
    if policy.definition.retention is not None:  # judged beside the run's selection (worker.steps.retire)
        nexts.append(Next(TaskName.RETIRE, {"policy_id": policy.id, "run": run}))
    return nexts


def _unfinished(ctx: StepContext, policy: Policy) -> str | None:
    """The previous run's batch while it has not finished (a deleted or forgotten one has)."""
    if policy.last_batch is None:
        return None
    summary = ctx.data.records.batch(policy.last_batch)
    return None if summary is None or summary.done else policy.last_batch


def _create_batch(ctx: StepContext, policy: Policy, run: int, started_at: float) -> str:
    """The run's batch, as the API stores a selector batch: labelled with the policy's name, owned by its
    principal; created once per run whatever the retries (the run's idempotency key)."""
    key = run_key(policy.id, run)
    stored = ctx.data.records.create_batch(
        [],
        started_at,
        label=policy.name,
        selection=policy.selection(started_at),
        claim=Claim(key, key, ctx.settings.idempotency_seconds),
        owner=policy.owner,
    )
    return stored.batch_id if stored.earlier is None else stored.earlier.id
