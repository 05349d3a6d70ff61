"""Retire: a policy's retention rule applied to its copies, once per run (``replication.retire``, sent by the run's
start, ``worker.steps.runs``), and judged without acting by a plan of the next run (``worker.steps.plan``).

The copies are the policy's own, and only those: listed by its provenance tag in its destination, from the cloud
(``worker.steps.provenance``), so nothing it did not make is ever retired, whatever Redis holds. Which of them the
rule no longer keeps is ``worker.domain.retirement``'s. Each gets a verdict: ``retirable`` (``action: report``),
``retired``, ``kept_shared`` (a member project has ``accepted`` it: one member read, only for a copy IMS shows as
shared), or ``failed`` with a reason code. Deletion is IMS's ``DELETE /v2/images/{image_id}``, which answers ``204``
once the image is gone (ims-contract §12; docs/ims-api.md): no job to poll. It goes through the account's client,
so its rate limit and circuit, like every call; it takes no copy slot, since the slots stand for IMS's concurrent
replication jobs (IMG.0060), which a deletion is not.

A run judges the copies its earlier runs finished: a run starts only once the previous one's batch has ended
(``worker.steps.runs``), so every copy it lists carries its tags; this run's own copies count from the next run.
Cloud errors are retried with backoff up to ``retry_max_attempts``; the verdicts are recorded as they are reached,
by image, so a step done again updates them and a lost one is made good by the next run, which judges afresh.
"""

from __future__ import annotations

import logging

from worker.domain.policy import Policy
from worker.domain.reasons import ReasonCode
from worker.domain.retirement import Action, Copy, Judged, Retention, Verdict, retired
from worker.errors import PermanentError, RetryableError
from worker.ims.client import ImsClient
from worker.queues import TaskName
from worker.steps.context import Next, StepContext
from worker.steps.provenance import Copied
from worker.steps.select import SelectionSpec

log = logging.getLogger("worker.retire")

ACCEPTED = "accepted"


def retire(ctx: StepContext, policy_id: str, run: int, attempt: int = 0) -> list[Next]:
    policy = ctx.data.policies.load(policy_id)
    if policy is None or policy.definition.retention is None:
        return []  # deleted, or its rule removed, since the run began
    judged: list[Judged] = []
    try:
        destination, found = policy_copies(ctx, policy)
        if destination is not None:
            final = attempt >= ctx.settings.retry_max_attempts
            judge(destination, policy.definition.retention, found, ctx.clock(), judged, act=True, final=final)
    except RetryableError as error:
        ctx.data.policies.record_retirements(policy_id, run, [j.to_dict() for j in judged])
        if attempt >= ctx.settings.retry_max_attempts:
            log.warning("policy %s run %d: retention gave up after %d attempts: %s", policy_id, run, attempt, error)
            return []
        delay = min(ctx.settings.retry_max_delay, max(error.retry_after or 0.0, ctx.backoff(attempt + 1)))
        log.info("policy %s run %d: retention again in %.1fs (%s)", policy_id, run, delay, error)
        return [Next(TaskName.RETIRE, {"policy_id": policy_id, "run": run, "attempt": attempt + 1}, delay)]
    ctx.data.policies.record_retirements(policy_id, run, [j.to_dict() for j in judged])
    if judged:
        log.info("policy %s run %d: %s", policy_id, run, _counts(judged))
    return []


def policy_copies(ctx: StepContext, policy: Policy) -> tuple[ImsClient | None, Copied]:
    """A client of the policy's destination and its copies there (no client: a destination IAM does not know)."""
    spec = SelectionSpec.of(policy.selection(ctx.clock()))
    return spec.destination(ctx, ctx.client(policy.account))


def judge(
    destination: ImsClient,
    rule: Retention,
    found: Copied,
    now: float,
    judged: list[Judged],
    *,
    act: bool,
    final: bool = True,
) -> None:
    """Append a verdict for each copy ``rule`` does not keep; ``act``: delete those it retires (a plan does not).
    A retryable error ends it (the verdicts so far are in ``judged``), unless ``final``: then that copy failed."""
    for copy in retired(found.live, rule, now):
        if copy.shared and not rule.delete_shared and _accepted(destination, copy):
            judged.append(Judged(copy, Verdict.KEPT_SHARED, message="a member project has accepted it"))
        elif rule.action is Action.REPORT:
            judged.append(Judged(copy, Verdict.RETIRABLE))
        elif not act:
            judged.append(Judged(copy, Verdict.RETIRED))
        else:
            judged.append(_delete(destination, copy, final=final))


def _accepted(destination: ImsClient, copy: Copy) -> bool:
    return any(member.status == ACCEPTED for member in destination.image_members(copy.image_id))


def _delete(destination: ImsClient, copy: Copy, *, final: bool) -> Judged:
    try:
        destination.delete_image(copy.image_id)
    except PermanentError as error:
        if error.reason is ReasonCode.IMAGE_NOT_FOUND:  # gone already (an earlier delivery, or by hand)
            return Judged(copy, Verdict.RETIRED)
        return Judged(copy, Verdict.FAILED, error.reason.value, str(error))
    except RetryableError as error:
        if not final:
            raise
        return Judged(copy, Verdict.FAILED, ReasonCode.RETRIES_EXHAUSTED.value, str(error))
    return Judged(copy, Verdict.RETIRED)


def _counts(judged: list[Judged]) -> str:
    counts: dict[str, int] = {}
    for j in judged:
        counts[j.verdict.value] = counts.get(j.verdict.value, 0) + 1
    return ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
