"""Confirm: the new images of an account's copies whose IMS jobs ended, seen ``active`` with one listing.

After a job's ``SUCCESS`` the new image must be ``active`` before the item succeeds (Terraform's check too, see
``worker.steps.poll``). Looked at one by one that is a call per copy, as many as the copy call itself; but an
account's copies end close together (its first ones start together, and every freed slot is taken at once), so
they are looked at with one listing page of the images created since the earliest of them started.

The poll that sees the job end frees the copy's slot at once (a finished job no longer counts against the
project's concurrent copies), puts the copy in the account's line (``worker.data.checks``) and, unless a check is
scheduled, sends one, due in ``GATHER_SHARE`` of the copy's duration (at most ``MAX_WAIT``): the copies that end
meanwhile are looked at with it, and no copy waits longer than that share of its own duration. The checks of
accounts whose copies ended together go in one message (``worker.bundles``), on the ``followup`` queue: a check
holds no slot, so the polls that hand slots on are taken first. A copy shorter than
10 s has its image read by its poll at once, as before. A copy that the
listing does not show active gets a poll of its own (one read, with the poll's retries and deadline), and so does
one whose check was lost: its due time is the check's, so the reconciler resends its poll. Cross-region copies are
still looked at one by one, in their destination (``worker.steps.poll``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from worker.domain.item import ReplicationItem
from worker.domain.selector import IMS_TIME
from worker.domain.states import ItemState
from worker.errors import ReplicatorError
from worker.ims.client import DEFAULT_PAGE_SIZE, ImsClient
from worker.ims.models import CLOCK_SKEW, Image
from worker.queues import TaskName
from worker.steps.context import Next, StepContext
from worker.steps.followup import copied

GATHER_SHARE = 0.05  # of a copy's duration: how long its check waits for others of the account to end
MAX_WAIT = 2.0  # seconds a check waits at most
# A copy shorter than MIN_WAIT / GATHER_SHARE (10 s) has its image read at once: its check would be one more task
# hop, which under load costs more than the wait, and short copies seldom end together.
MIN_WAIT = 0.5


def see_later(ctx: StepContext, item: ReplicationItem) -> list[Next] | None:
    """The in-region copy's job ended (its new image recorded, its slot freed): look at the image with the account's
    next check; None for a short copy, whose image is read at once."""
    now = ctx.clock()
    wait = min(MAX_WAIT, GATHER_SHARE * max(0.0, now - (item.job_started_at or now)))
    if wait < MIN_WAIT:
        return None
    ctx.data.records.set_due({item.id: now + wait})  # its check lost: the reconciler resends the copy's poll
    if ctx.data.checks.add(item.account, item.id, now, within=wait):
        return [Next(TaskName.NEW_IMAGES, {"account": item.account}, wait)]
    return []


def see_new_images(ctx: StepContext, account: str) -> list[Next]:
    items = [
        item
        for item in ctx.data.records.get_items(ctx.data.checks.take(account))
        if item.state is ItemState.REPLICATING and item.job_done
    ]
    if not items:
        return []
    try:
        images = _listed(ctx.client(account), items)
    except ReplicatorError:
        images = {}  # each copy's own poll looks, with its retries
    nexts: list[Next] = []
    for item in items:
        image = images.get(item.new_image_id or "")
        if image is not None and image.status == "active":
            nexts += copied(ctx, item, image.id)
        else:  # not active yet, or not in the page: a read of its own
            nexts.append(Next.for_item(TaskName.POLL, item, seq=item.poll_seq or 0))
    return nexts


def _listed(client: ImsClient, items: list[ReplicationItem]) -> dict[str, Image]:
    """The copies' new images among the account's images created since the earliest of them started (one page)."""
    wanted = {item.new_image_id for item in items}
    since = min(item.job_started_at or 0.0 for item in items) - CLOCK_SKEW
    created = datetime.fromtimestamp(since, timezone.utc).strftime(IMS_TIME)
    page = client.list_images(__imagetype="private", created_at=f"gte:{created}", limit=DEFAULT_PAGE_SIZE)
    return {image.id: image for image in page if image.id in wanted}
