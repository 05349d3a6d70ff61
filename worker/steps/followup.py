"""Follow-ups: what happens to a copy once it is active, its tags and then its sharing (``worker.domain.followups``).

``copied`` is called by the poll that finds the new image active. Without follow-ups the item simply succeeds.
With them it moves to ``finishing`` (event ``copied``) and its replication slot is freed at once (tag and member
calls are not IMS replication tasks), then ``followup`` tasks (``replication.tag``, ``replication.share``) work
through them in order, each with its own retries. Tags: one idempotent ``tags/action`` call with the item's tags
(and the provenance tags), then the copy's tags are read back, so the item says exactly what IMS holds. Sharing:
``POST /v1/cloudimages/members``, its job followed like a copy's (a countdown, never a sleep), then the members
listed with their status (``pending`` until each project accepts); before the member call the account's
``share_projects`` are checked again (a refusal is ``SHARE_NOT_ALLOWED``, and no member is added). A cross-region
copy's follow-ups use the destination's client, where the copy is.

A follow-up that IMS refuses, or that runs out of retries or time, is ``failed`` with its reason, and the next one
still runs. Then the item ends ``succeeded`` either way, since the copy exists; a failed follow-up is named by the
item's reason (``TAGS_NOT_APPLIED``, ``NOT_SHARED``) and spelt out in its message and ``followups``.

Chains of follow-up tasks are numbered like poll chains (``poll_seq``, claimed in ``finishing``), so a duplicate
or a reconciler's re-send never doubles them.
"""

from __future__ import annotations

import logging

from worker import registry
from worker.domain import guardrails
from worker.domain.followups import (
    DistributeResult,
    Followups,
    Kind,
    Member,
    Result,
    ShareResult,
    Status,
    TagsResult,
    wanted_tags,
)
from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.states import Event, ItemState
from worker.errors import AuthenticationError, PermanentError, ReplicatorError, RetryableError
from worker.ims.client import ImsClient
from worker.ratelimit import RateLimited
from worker.steps.context import Next, StepContext
from worker.steps.distribute import distribute, members_of, receiver_verdicts
from worker.steps.outcomes import finish, release_slot, retry_later

log = logging.getLogger("worker.steps")


def copied(ctx: StepContext, item: ReplicationItem, image_id: str) -> list[Next]:
    """The new image is active: the item succeeds, or (with tags or sharing to apply) its follow-ups begin."""
    provenance = item.provenance if item.provenance is not None else ctx.settings.provenance_tags
    tags = wanted_tags(item.tags, provenance, item.image_id, item.batch_id)
    receivers = receiver_verdicts(ctx, item)
    # One members call for all: share_with's projects and the receivers' (docs/ims-api.md §9).
    members = [*(item.share_with or ()), *members_of(ctx, item, receivers)]
    if not tags and not members and not receivers:
        return finish(ctx, item, ItemState.SUCCEEDED, new_image_id=image_id, progress=1.0)
    now = ctx.clock()
    followups = Followups(
        started_at=now,
        tags=TagsResult(wanted=tags) if tags else None,
        share=ShareResult(wanted=members) if members else None,
        distribute=DistributeResult(receivers=receivers, withdraw=bool(item.withdraw_share)) if receivers else None,
    )
    moved = ctx.data.records.move(
        item,
        Event.COPIED,
        now=now,
        new_image_id=image_id,
        progress=1.0,
        followups=followups,
        poll_seq=0,
        error_retries=0,  # the follow-ups' own retry budget
    )
    if not moved.ok:
        return []  # another poll got there first
    log.info("item %s copied to %s; follow-ups: %s", item.id, image_id, followups.next_kind())
    finishing = item.model_copy(update={"state": ItemState.FINISHING, "new_image_id": image_id, "poll_seq": 0})
    return release_slot(ctx, finishing) + [_task(finishing, followups, 0, 0.0)]


def followup(ctx: StepContext, item_id: str, seq: int, *, redelivered: bool = False) -> list[Next]:
    """Carry the item's follow-ups as far as they go now; then a task for the rest, or the item's end."""
    item = ctx.data.records.get_item(item_id)
    if item is None or item.state is not ItemState.FINISHING or item.followups is None:
        return []
    current = item.poll_seq or 0
    if seq != current:
        if not redelivered:
            return []  # a duplicate of a task that has already run
        seq = current  # its worker died: take the chain over (the claim lets one of two go on)
    followups = item.followups
    sent: list[Next] = []  # a distribution's receiver items' first steps
    while (kind := followups.next_kind()) is not None:
        result = followups.result(kind)
        assert result is not None
        # A distribution waits on its receiver items, which keep deadlines of their own (a full quota's wait too).
        late = ctx.clock() - followups.started_at > ctx.settings.poll_deadline_seconds
        if late and kind is not Kind.DISTRIBUTE:
            _fail(result, ReasonCode.FOLLOWUP_DEADLINE, "not done within IMSREP_POLL_DEADLINE_SECONDS")
            continue
        try:
            client = ctx.destination(item)
            if isinstance(result, TagsResult):
                wait = _tags(client, item, result)
            elif isinstance(result, ShareResult):
                wait = _share(ctx, client, item, result)
            else:
                wait, made = distribute(ctx, client, item, result, followups.share)
                sent += made
        except PermanentError as error:
            if isinstance(error, AuthenticationError):
                ctx.credentials_refused(item.account, error)
            _fail(result, error.reason, str(error))
            _read_back(ctx, item, result)
            continue
        except RetryableError as error:
            _save(ctx, item, followups)
            # A finishing item cannot fail: the follow-up ends here once the retries are spent (retry_later, told
            # budget=False, never fails the item; it spends them).
            if not isinstance(error, RateLimited) and item.error_retries >= ctx.settings.retry_max_attempts:
                _fail(result, ReasonCode.RETRIES_EXHAUSTED, f"gave up after {item.error_retries} retries: {error}")
                continue
            if not _claim(ctx, item, seq):
                return []
            return retry_later(ctx, item, error, registry.followup_task(kind), budget=False, seq=seq + 1)
        if wait is not None:  # IMS is still at it (a member job), or receiver items are: look again later
            _save(ctx, item, followups)
            if not _claim(ctx, item, seq):
                return sent
            return [*sent, _task(item, followups, seq + 1, wait)]
    return _done(ctx, item, followups)


def give_up(ctx: StepContext, item: ReplicationItem, reason: ReasonCode, message: str) -> list[Next]:
    """End a finishing item now: the follow-ups not done yet fail with ``reason``; the copy stands."""
    if item.followups is None:
        return finish(ctx, item, ItemState.SUCCEEDED)
    for kind in Kind:
        result = item.followups.result(kind)
        if result is not None and result.status is Status.PENDING:
            _fail(result, reason, message)
    return _done(ctx, item, item.followups)


def _tags(client: ImsClient, item: ReplicationItem, result: TagsResult) -> float | None:
    client.tag_image(item.new_image_id or "", result.wanted)
    _applied_tags(client, item, result)
    result.status = Status.APPLIED if not result.not_applied else Status.FAILED
    if result.status is Status.FAILED:
        result.reason = ReasonCode.TAG_INVALID
        result.message = "IMS accepted the tags but does not show them all on the copy"
    return None


def _applied_tags(client: ImsClient, item: ReplicationItem, result: TagsResult) -> None:
    held = client.image_tags(item.new_image_id or "")
    result.applied = {k: v for k, v in result.wanted.items() if held.get(k) == v}


def _share(ctx: StepContext, client: ImsClient, item: ReplicationItem, result: ShareResult) -> float | None:
    """Start the member job, or follow it; the members with their status once it is done. Returns the countdown
    to look again, or None when this follow-up is over."""
    image_id = item.new_image_id or ""
    if result.job_id is None:
        # The account's share_projects, as they are now, before any member is added (worker.domain.guardrails).
        account = ctx.account(item.account)
        if account is not None and (breach := guardrails.share_breach(item.account, account, result.wanted)):
            _fail(result, breach.reason, str(breach))
            return None
        # Sent again after a crash before the job ID was saved, IMS only adds members already there again.
        result.job_id = client.add_members([image_id], result.wanted)
        return ctx.settings.poll_initial_delay
    job = client.get_job(result.job_id)
    if job.failed:
        detail = ": ".join(part for part in (job.error_code, job.fail_reason) if part) or "no reason given"
        _fail(result, ReasonCode.IMS_JOB_FAILED, f"IMS member job {result.job_id} failed: {detail}")
        _members(client, image_id, result)
        return None
    if not job.succeeded:
        return ctx.settings.poll_min_interval
    _members(client, image_id, result)
    if result.not_shared:
        missing = ", ".join(result.not_shared)
        _fail(result, ReasonCode.IMS_REFUSED, f"IMS's member job {result.job_id} ended without adding {missing}")
    else:
        result.status = Status.APPLIED
    return None


def _members(client: ImsClient, image_id: str, result: ShareResult) -> None:
    wanted = set(result.wanted)
    result.members = [
        Member(project_id=m.member_id, status=m.status) for m in client.image_members(image_id) if m.member_id in wanted
    ]


def _read_back(ctx: StepContext, item: ReplicationItem, result: Result) -> None:
    """After a refusal, what the copy holds anyway (an earlier attempt may have applied some): best effort."""
    try:
        client = ctx.destination(item)
        if isinstance(result, TagsResult):
            _applied_tags(client, item, result)
        elif isinstance(result, ShareResult) and result.job_id is not None:
            _members(client, item.new_image_id or "", result)
    except ReplicatorError as error:
        log.info("item %s: could not read back its %s after a refusal: %s", item.id, type(result).__name__, error)


def _fail(result: Result, reason: ReasonCode, message: str) -> None:
    result.status, result.reason, result.message = Status.FAILED, reason, message


def _done(ctx: StepContext, item: ReplicationItem, followups: Followups) -> list[Next]:
    reason, message = followups.outcome()
    nexts = finish(ctx, item, ItemState.SUCCEEDED, reason=reason, message=message, followups=followups)
    for kind in Kind:
        result = followups.result(kind)
        if result is not None:
            ctx.data.telemetry.record_followup(kind.value, result.status.value)
    return nexts


def _save(ctx: StepContext, item: ReplicationItem, followups: Followups) -> None:
    ctx.data.records.update_if(item.id, ItemState.FINISHING, followups=followups)


def _claim(ctx: StepContext, item: ReplicationItem, seq: int) -> bool:
    return ctx.data.records.claim_poll(item.id, seq, ctx.clock(), ItemState.FINISHING)


def _task(item: ReplicationItem, followups: Followups, seq: int, countdown: float) -> Next:
    kind = followups.next_kind() or Kind.TAGS
    return Next.for_item(registry.followup_task(kind), item, countdown, seq=seq)
