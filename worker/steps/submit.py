"""Submit: the copy call, made at most once per item even when the task is redelivered or retried.

Before the call the attempt is recorded (``submit_started_at``; ``target_name`` is already fixed by validation) and
confirmed by ``IMSREP_REDIS_MIN_REPLICAS`` replicas, so a worker that re-enters the step with an attempt recorded
but no ``job_id`` (it crashed after IMS accepted the copy, the answer was lost in a timeout, or a failover lost
what followed) first looks in IMS for the copy: an image named ``target_name`` whose
``__data_origin`` names the source image and that was created at or after the attempt. Found, it is adopted: the
item goes to ``replicating`` with ``new_image_id`` set and no ``job_id``, and the poll step follows the image itself
to ``active`` (IMS has no way to find a job by its image). A per-item lock keeps two deliveries of the same submit
from calling copy side by side; one that finds it held looks again when it expires, as a failover may have lost its
holder's release.

A cross-region copy (docs/ims-api.md §3) is made with the source region's client, names the destination region,
project and agency, and its new image appears in the destination project: that is where an earlier attempt's copy
is looked for, with the destination's client, whose credentials are checked before the copy call (an IAM user's
token scoped to the destination project is obtained first).

Just before the copy call the account's guardrails (``worker.domain.guardrails``) are judged again: an item that
breaks them ends ``failed`` (``SHARE_NOT_ALLOWED``, ``REGION_NOT_ALLOWED``) with no copy made.

A retried item first looks at what its failed attempt left (``prior_job_id``, ``prior_image_id``,
``prior_submit_at``): a job that went on, or a copy that exists, is followed instead of copying again.

A policy's item (its tags name the policy: ``worker.domain.followups.policy_tags``) also adopts a copy an earlier
run made of its source whose provenance tags never landed: its tagging failed (``TAGS_NOT_APPLIED``), or Redis lost
the item while the copy was being made. IMS's copy calls take no tags (``CopyImageInRegionRequestBody``: name,
description, cmk_id, enterprise_project_id), so such a copy is invisible to the run's listing by tag
(``worker.steps.provenance``); it is found as any adopted copy is, from what IMS itself records at creation: the
name the template gives (``target_name``) and ``__data_origin`` naming the source, usable, and carrying no other
policy's tag. Adopted, it gets its tags as a new copy would, so the run makes no second copy. IMS full
(``IMG.0060``, ``IMG.0149`` across regions) or the image quota full (``IMG.0015``) hands the item back to its line
(``worker.steps.scheduling``): no copy was made and the item is not at fault.
"""

from __future__ import annotations

import logging

from worker.domain.followups import PROVENANCE_POLICY
from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.states import Event, ItemState
from worker.errors import IMS_FULL_CODES, ImsRefusedError, PermanentError, RetryableError, ThrottledError
from worker.ims.client import ImsClient
from worker.ims.models import CLOCK_SKEW, GONE, Image
from worker.queues import TaskName
from worker.steps.context import Next, StepContext
from worker.steps.outcomes import fail_permanently, finish, release_slot, retry_later
from worker.steps.poll import first_poll
from worker.steps.scheduling import QUOTA_FULL, hand_back, item_pool, waits_for_quota
from worker.steps.validate import Problem, check_guardrails

log = logging.getLogger("worker.steps")

LOCK_MARGIN = 0.1  # seconds after a held submit lock expires that the delivery which found it held looks again


def submit(ctx: StepContext, item_id: str) -> list[Next]:
    # The lease is the with statement's: no exception, however it lands (a soft time limit), leaves it renewed.
    with ctx.data.control.submit_lock(item_id, lease=ctx.settings.submit_lease_seconds) as taken:
        if taken:
            return _submit(ctx, item_id)
    return _after_lock(ctx, item_id)


def _after_lock(ctx: StepContext, item_id: str) -> list[Next]:
    """Another delivery holds the item's submit lock, or held it and a failover lost its release: look again when the
    lock expires. A holder that ran has moved the item on by then, and the look ends there."""
    item = ctx.data.records.get_item(item_id)
    if item is None or item.state not in (ItemState.WAITING, ItemState.SUBMITTING):
        return []
    return [Next.for_item(TaskName.SUBMIT, item, ctx.data.control.submit_lock_left(item_id) + LOCK_MARGIN)]


def _submit(ctx: StepContext, item_id: str) -> list[Next]:
    item = ctx.data.records.get_item(item_id)
    if item is None:
        return []
    if item.state.terminal:  # cancelled while it held a slot: hand the slot on
        return release_slot(ctx, item)
    if item.state is ItemState.WAITING:
        pool = item_pool(ctx, item)
        if pool is None or not ctx.data.slots.holds(pool.name, item.id):
            return []  # not its turn: the slot pool sends its submit when a slot frees up
        # A new attempt starts clean of the previous attempt's copy (a retried item remembers it as prior_*).
        fields = dict.fromkeys(("submit_started_at", "job_id", "job_started_at", "new_image_id", "progress"))
        if not ctx.data.records.move(item, Event.START_SUBMIT, error_retries=0, **fields).ok:
            return []
        item = item.model_copy(update={"state": ItemState.SUBMITTING, "error_retries": 0, **fields})  # as stored
    if item.state is not ItemState.SUBMITTING:
        return []
    earlier = item.submit_started_at or item.prior_submit_at
    try:
        client = ctx.client(item.account)
        copies = ctx.destination(item)  # where the new image appears: the account's project, or the destination's
        copies.authenticate()
        if (adopted := _earlier_copy(ctx, client, copies, item, earlier)) is not None:
            return adopted
        if refused := _guardrails(ctx, item):
            return finish(ctx, item, ItemState.FAILED, reason=refused[0][0], message="; ".join(m for _, m in refused))
        # The attempt is on the replicas before the copy call (IMSREP_REDIS_MIN_REPLICAS), so that no failover can
        # make the pipeline forget it asked for a copy; NotReplicated: no call now (the task sends the step again).
        if item.submit_started_at is None:
            ctx.data.records.record_attempt(item.id, ctx.clock())
        else:
            ctx.data.records.confirm()
        try:
            job_id = _copy(client, item)
        except ImsRefusedError as error:
            if error.code == QUOTA_FULL and waits_for_quota(ctx, item):
                return hand_back(ctx, item, error)
            # The name taken after an attempt that may have gone through: most likely by our own copy.
            taken = error.reason is ReasonCode.NAME_EXISTS and earlier is not None
            if taken and (found := find_copy(copies, item, earlier)):
                return start_polling(ctx, item, new_image_id=found.id)
            raise
        except ThrottledError as error:
            if error.code in IMS_FULL_CODES:
                return hand_back(ctx, item, error)
            raise
    except PermanentError as error:
        return fail_permanently(ctx, item, error, ItemState.FAILED)
    except RetryableError as error:
        return retry_later(ctx, item, error, TaskName.SUBMIT)
    return start_polling(ctx, item, job_id=job_id)


def _guardrails(ctx: StepContext, item: ReplicationItem) -> list[Problem]:
    """The account's guardrails, judged again with the settings of now just before the copy call: an item validated
    under looser ones, or put in line by anything but validation, makes no copy they forbid."""
    account = ctx.account(item.account)
    return check_guardrails(item, account) if account is not None else []


def _copy(client: ImsClient, item: ReplicationItem) -> str:
    """The copy call: in-region, or across regions with the destination validation resolved."""
    if item.target_region is None:
        return client.copy_image(
            item.image_id,
            name=item.target_name or "",
            description=item.description,
            cmk_id=item.cmk_id,
            enterprise_project_id=item.enterprise_project_id,
        )
    return client.copy_image_cross_region(
        item.image_id,
        name=item.target_name or "",
        description=item.description,
        region=item.target_region,
        project_name=item.destination_project or item.target_region,
        agency_name=item.agency_name or "",
    )


def _earlier_copy(
    ctx: StepContext, client: ImsClient, copies: ImsClient, item: ReplicationItem, since: float | None
) -> list[Next] | None:
    """Follow the copy an earlier attempt made, if IMS has one: this attempt's own call whose answer was lost, or
    a failed attempt's job that went on (a retried item). ``client`` is the source region's (jobs live there),
    ``copies`` the destination's (copies appear there). None: there is nothing to adopt, copy."""
    if item.prior_job_id:
        try:
            job = client.get_job(item.prior_job_id)
        except ImsRefusedError:  # IMS no longer knows the job: nothing to follow there
            job = None
        if job is not None and job.succeeded and job.image_id:
            return start_polling(ctx, item, new_image_id=job.image_id)
        if job is not None and not job.finished:
            return start_polling(ctx, item, job_id=item.prior_job_id)
    if item.prior_image_id:
        image = copies.get_image(item.prior_image_id)
        if image is not None and image.status not in GONE:
            return start_polling(ctx, item, new_image_id=image.id)
    # This attempt's own copy is followed whatever became of it (IMS's failure is the item's verdict); a failed
    # attempt's copy only when it is still usable (the retry is for a new copy).
    usable_only = item.submit_started_at is None
    if since is not None and (found := find_copy(copies, item, since, usable_only=usable_only)):
        return start_polling(ctx, item, new_image_id=found.id)
    policy = (item.tags or {}).get(PROVENANCE_POLICY)
    if policy is not None and (found := find_copy(copies, item, None, usable_only=True, policy=policy)):
        return start_polling(ctx, item, new_image_id=found.id)
    return None


def find_copy(
    client: ImsClient,
    item: ReplicationItem,
    since: float | None,
    *,
    usable_only: bool = False,
    policy: str | None = None,
) -> Image | None:
    """The newest image IMS made from this item's source under its new name, if any (``client``: where copies
    appear): made at or after ``since`` (this item's attempt), or at any time by ``policy``'s earlier runs (one
    carrying another policy's tag is that policy's); ``usable_only``: not killed or deleted."""
    candidates = [
        image
        for image in client.list_images(name=item.target_name)
        if image.copied_from == item.image_id
        and (since is None or image.created_at is None or image.created_at.timestamp() >= since - CLOCK_SKEW)
        and not (usable_only and image.status in GONE)
        and image.tag(PROVENANCE_POLICY) in (None, policy)
    ]
    candidates.sort(key=lambda image: image.created_at.timestamp() if image.created_at else 0.0)
    if candidates:
        made_by = "an earlier attempt" if policy is None else f"an earlier run of policy {policy}"
        log.warning("item %s: adopting copy %s made by %s", item.id, candidates[-1].id, made_by)
    return candidates[-1] if candidates else None


def start_polling(
    ctx: StepContext, item: ReplicationItem, *, job_id: str | None = None, new_image_id: str | None = None
) -> list[Next]:
    now = ctx.clock()
    moved = ctx.data.records.move(
        item,
        Event.COPY_STARTED,
        now=now,
        job_id=job_id,
        new_image_id=new_image_id,
        job_started_at=now,
        progress=0.0,
        poll_seq=0,
        error_retries=0,
        outage_mark=ctx.data.accounts.health(item.account, now).outage_seconds,
        prior_job_id=None,
        prior_image_id=None,
        prior_submit_at=None,
    )
    if not moved.ok:
        log.error("item %s: copy started (job %s) but the item was moved to %s", item.id, job_id, moved.previous)
        return []
    return [first_poll(ctx, item)]
