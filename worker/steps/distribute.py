"""A distribution (docs/architecture.md "A distribution"): the parent's last follow-up, and its receivers' accept.

Once the parent's copy is shared with every receiver (the share follow-up: one members call for all of them),
``distribute`` adds one **receiver item** per receiver to the batch (IDs derived from the parent's and the
receiver's account, added by one script: a resend adds none twice) and sends each its validation. A receiver item is
an in-region copy of the shared image made by the receiver's account, under its key, in its slot pool; it fails
alone, with its own reason. ``distribute`` then looks at the receiver items, without a cloud call, until every one
has ended, and ends with one verdict per receiver; a receiver the share did not reach, or whose account the workers
do not know, fails here without an item.

Receivers in another region than the copy's get it through a **cross-region item** per region (the parent's copy
copied there by the source account, into its project of that region, IMS sharing within a region only): an item of
the batch too, whose own follow-ups share it with the receivers there and distribute to them; the parent's verdicts
follow their receiver items through it (``via``).

``accept_share`` is the start of a receiver item's validation: its account accepts the share as the member
(``PUT /v1/cloudimages/members``, docs/ims-api.md §9), the member job followed by countdown (the validate task sent
again), so that the reconciler's resend of a validating item covers it too.
"""

from __future__ import annotations

import uuid

from worker.domain.distribution import Receiver
from worker.domain.followups import DistributeResult, ReceiverVerdict, ShareResult, Status
from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.ims.client import ImsClient
from worker.ims.models import Image
from worker.queues import TaskName
from worker.steps.context import Next, StepContext
from worker.steps.outcomes import finish

# Receiver items' IDs: derived, so that the follow-up sent again finds the items it made rather than making more.
_RECEIVERS = uuid.UUID("5f0c6c1e-9b7d-4d59-8f43-6a1de0b7c2a1")


def receiver_verdicts(ctx: StepContext, item: ReplicationItem) -> list[ReceiverVerdict]:
    """Each receiver of ``item``, its project resolved from the workers' settings (None: not configured here)."""
    source = ctx.account(item.account)
    verdicts = []
    for receiver in item.distribute or ():
        account = ctx.account(receiver.account)
        verdicts.append(
            ReceiverVerdict(
                account=receiver.account,
                region=receiver.region or (source.region if source else ""),
                project_id=account.project_id if account else None,
                key=receiver.key,
                tags=receiver.tags,
            )
        )
    return verdicts


def members_of(ctx: StepContext, item: ReplicationItem, verdicts: list[ReceiverVerdict]) -> list[str]:
    """The receivers' projects the copy is shared with: those in its region (IMS shares within a region, IMG.0177
    otherwise; the others get the copy of a cross-region item of their region, ``_make``)."""
    region = _region(ctx, item)
    return [v.project_id for v in verdicts if v.project_id is not None and v.region == region]


def _region(ctx: StepContext, item: ReplicationItem) -> str | None:
    """Where the item's copy is: its destination region, or its account's."""
    source = ctx.account(item.account)
    return item.target_region or (source.region if source else None)


def receiver_id(parent_id: str, account: str) -> str:
    return uuid.uuid5(_RECEIVERS, f"{parent_id}/{account}").hex


def distribute(
    ctx: StepContext, client: ImsClient, item: ReplicationItem, result: DistributeResult, share: ShareResult | None
) -> tuple[float | None, list[Next]]:
    """Make the receiver items (once), follow them, then withdraw the share when asked; returns the countdown to look
    again (None: done) and the receiver items' first steps. ``client``: the owner of the shared copy."""
    made = [i for v in result.receivers for i in (v.item_id, v.via) if i is not None]
    if not made and all(v.state == Status.PENDING.value for v in result.receivers):
        children = _make(ctx, item, result, share)
        return ctx.settings.poll_initial_delay, [Next.for_item(TaskName.VALIDATE, child) for child in children]
    children = {child.id: child for child in ctx.data.records.get_items(list(dict.fromkeys(made)))}
    for verdict in result.receivers:
        if (child := children.get(verdict.item_id or "")) is not None:
            _judge(verdict, child)
        elif (via := children.get(verdict.via or "")) is not None and via.state.terminal:
            _judge_by_way(verdict, via)
    if any(not ItemState(v.state).terminal for v in result.receivers if v.item_id is not None):
        # One still accepted lost its first step (sent after the item was made; a worker died in between): again.
        unstarted = [child for child in children.values() if child.state is ItemState.ACCEPTED]
        return ctx.settings.poll_max_interval, [Next.for_item(TaskName.VALIDATE, child) for child in unstarted]
    missing = result.not_distributed
    if missing:
        # The share stays: a receiver retried (the batch's retry) accepts and copies it then.
        result.status, result.reason = Status.FAILED, missing[0].reason or ReasonCode.NOT_DISTRIBUTED
        result.message = "; ".join(_why(v) for v in missing)
        return None, []
    if result.withdraw and not result.withdrawn:
        return _withdraw(ctx, client, item, result), []
    result.status = Status.APPLIED
    return None, []


def _withdraw(ctx: StepContext, client: ImsClient, item: ReplicationItem, result: DistributeResult) -> float | None:
    """Remove every receiver from the copy's members, now that each has a copy of its own (the copy outlives the
    share, docs/ims-api.md §9); the member job followed by countdown. None once it has ended."""
    projects = members_of(ctx, item, result.receivers)
    if result.withdraw_job_id is None:
        # Sent again after a crash before the job ID was saved, IMS removes members already gone without complaint.
        result.withdraw_job_id = client.remove_members([item.new_image_id or ""], projects)
        return ctx.settings.poll_initial_delay
    job = client.get_job(result.withdraw_job_id)
    if not job.finished:
        return ctx.settings.poll_min_interval
    if job.failed:
        detail = ": ".join(part for part in (job.error_code, job.fail_reason) if part) or "no reason given"
        result.status, result.reason = Status.FAILED, ReasonCode.IMS_JOB_FAILED
        result.message = f"every receiver has its copy; withdrawing the share failed (job {job.job_id}): {detail}"
        return None
    result.withdrawn, result.status = True, Status.APPLIED
    return None


def _why(verdict: ReceiverVerdict) -> str:
    why = verdict.reason.value if verdict.reason else verdict.state
    return f"{verdict.account}: {why}: {verdict.message}"


def _make(
    ctx: StepContext, item: ReplicationItem, result: DistributeResult, share: ShareResult | None
) -> list[ReplicationItem]:
    """The receiver items of the receivers the share reached, and a cross-region item per other region its
    receivers are in (that item distributes to them there); the others fail here with their reason."""
    shared = {m.project_id for m in share.members} if share is not None else set()
    region = _region(ctx, item)
    now = ctx.clock()
    children = []
    elsewhere: dict[str, list[ReceiverVerdict]] = {}
    for verdict in result.receivers:
        if verdict.project_id is None:
            verdict.state, verdict.reason = ItemState.FAILED.value, ReasonCode.UNKNOWN_ACCOUNT
            verdict.message = f"account {verdict.account!r} is not configured on the workers"
        elif verdict.region != region and item.target_region is None:
            elsewhere.setdefault(verdict.region, []).append(verdict)
        elif verdict.region != region:  # a cross-region item's receivers are all in its region
            verdict.state, verdict.reason = ItemState.FAILED.value, ReasonCode.TARGET_REGION_INVALID
            verdict.message = f"region {verdict.region} is not the copy's ({region})"
        elif verdict.project_id not in shared:
            verdict.state, verdict.reason = ItemState.FAILED.value, ReasonCode.NOT_SHARED
            why = share.message if share is not None and share.message else "not among the copy's members"
            verdict.message = f"the copy is not shared with its project {verdict.project_id}: {why}"
        else:
            verdict.item_id, verdict.state = receiver_id(item.id, verdict.account), ItemState.ACCEPTED.value
            children.append(_receiver_item(item, verdict, now))
    for target, verdicts in elsewhere.items():
        carrier = _cross_region_item(item, target, verdicts, now)
        for verdict in verdicts:
            verdict.via, verdict.state = carrier.id, ItemState.ACCEPTED.value
            verdict.item_id = receiver_id(carrier.id, verdict.account)  # made by the carrier's own distribution
        children.append(carrier)
    ctx.data.records.add_children(item.batch_id, children, now)
    return children


def _cross_region_item(
    parent: ReplicationItem, region: str, verdicts: list[ReceiverVerdict], now: float
) -> ReplicationItem:
    """The parent's copy carried into ``region`` (a cross-region copy of the source account, made unencrypted as
    any), which distributes to the receivers there as its own follow-up."""
    receivers = [Receiver(account=v.account, region=region, key=v.key, tags=v.tags) for v in verdicts]
    carrier_id = uuid.uuid5(_RECEIVERS, f"{parent.id}/region/{region}").hex
    fields = {"target_region": region, "distribute": receivers, "withdraw_share": parent.withdraw_share}
    return _child(parent, carrier_id, parent.account, now, **fields)


def _receiver_item(parent: ReplicationItem, verdict: ReceiverVerdict, now: float) -> ReplicationItem:
    """The receiver's in-region copy of the parent's shared copy, under the receiver's key and tags. The shared
    image's name and size are the parent's copy's (a copy has its source's size), so that the receiver's validation
    need not look it up (``shared_copy``)."""
    assert verdict.item_id is not None
    shared = {"source_name": parent.target_name, "source_size": parent.source_size}
    return _child(parent, verdict.item_id, verdict.account, now, kms_key=verdict.key, tags=verdict.tags, **shared)


def _child(parent: ReplicationItem, item_id: str, account: str, now: float, **fields: object) -> ReplicationItem:
    """An item the parent's distribution adds to its batch: a copy of the parent's copy, named as it, its results
    row beside the parent's (cli/results.py)."""
    assert parent.new_image_id is not None
    return ReplicationItem(
        id=item_id,
        batch_id=parent.batch_id,
        account=account,
        image_id=parent.new_image_id,
        name=parent.target_name,
        description=parent.description,
        provenance=parent.provenance,
        parent_id=parent.id,
        line=parent.line,
        state=ItemState.ACCEPTED,
        created_at=now,
        updated_at=now,
        **fields,
    )


def _judge_by_way(verdict: ReceiverVerdict, via: ReplicationItem) -> None:
    """A receiver of another region whose receiver item was never made: what its region's carrier said of it (it
    did not reach it), or why the carrier failed."""
    inner = via.followups.distribute if via.followups is not None else None
    said = next((v for v in inner.receivers if v.account == verdict.account), None) if inner is not None else None
    if said is not None and said.item_id is None and said.state != Status.PENDING.value:
        verdict.state, verdict.reason, verdict.message = said.state, said.reason, said.message
    elif via.state is not ItemState.SUCCEEDED:
        verdict.state, verdict.reason = ItemState.FAILED.value, via.reason
        verdict.message = f"the copy into {verdict.region} (item {via.id}) ended {via.state.value}: {via.message}"


def _judge(verdict: ReceiverVerdict, child: ReplicationItem) -> None:
    verdict.state = child.state.value
    verdict.new_image_id = child.new_image_id if child.state is ItemState.SUCCEEDED else None
    verdict.reason, verdict.message = child.reason, child.message


def shared_copy(item: ReplicationItem) -> Image | None:
    """The shared image a receiver item copies, known without a look-up once its accept has succeeded: the member
    job proves it exists and is shared with the receiver (docs/ims-api.md §9); it is the parent's copy, which was
    active when the parent's copy ended, unencrypted (a distribution's copy is: the API refuses ``kms_key`` with
    ``distribute``) and passed the image rules as the parent's source. None when the item does not carry its name
    and size (made before it did): it is looked up."""
    if not item.receives_share or item.source_name is None or item.source_size is None:
        return None
    return Image(id=item.image_id, name=item.source_name, status="active", size_bytes=item.source_size)


def accept_share(ctx: StepContext, item: ReplicationItem, client: ImsClient) -> list[Next] | None:
    """Accept the share as the receiver, then follow the member job: what to send while it runs, or its rejection
    when it failed; None once the share is accepted (validation goes on)."""
    if item.accept_job_id is None:
        # Sent again after a crash before the job ID was saved, IMS only accepts an accepted share again.
        job_id = client.update_member_status([item.image_id], "accepted")
        ctx.data.records.update_if(item.id, ItemState.VALIDATING, accept_job_id=job_id)
        return [Next.for_item(TaskName.VALIDATE, item, ctx.settings.poll_initial_delay)]
    job = client.get_job(item.accept_job_id)
    if job.failed:
        detail = ": ".join(part for part in (job.error_code, job.fail_reason) if part) or "no reason given"
        message = f"accepting the share as {item.account}: IMS member job {item.accept_job_id} failed: {detail}"
        return finish(ctx, item, ItemState.REJECTED, reason=ReasonCode.SHARE_NOT_ACCEPTED, message=message)
    if not job.succeeded:
        return [Next.for_item(TaskName.VALIDATE, item, ctx.settings.poll_min_interval)]
    return None
