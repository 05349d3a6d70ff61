"""Validate: every rule of in-region replication, checked against IMS and KMS before any copy is attempted.

Rules (Huawei's "Replicating Images Within a Region", docs/ims-api.md §2): the image exists and is visible, is
``active`` (Normal), is not a full-ECS image, not an ISO image, at most 128 GB; the new name (requested, or
``copy_<region>_<source name>``) and description follow IMS's rules; a requested KMS key exists and is enabled, an
alias such as ``ims/default`` resolved to its key ID. Encryption follows from the key: a key gives an encrypted
copy (re-keyed when the source was encrypted), no key an unencrypted one. Every rule is checked, so a rejected
item names all its problems at once (the reason code is the first one's).

``validate`` looks one item up (``get_image``: one call). ``validate_many`` takes many items of one account at once
(an admit chunk): their images come from listing pages of the account's private images (500 a page), each key
reference is looked up once, and the same rules decide; an item the pages do not show, or every item when the
listing fails, goes the one-by-one way instead, where errors are retried and reported per item.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from worker.domain.item import ReplicationItem
from worker.domain.naming import default_copy_name, description_problem, name_problem
from worker.domain.reasons import ReasonCode
from worker.domain.states import Event, ItemState
from worker.errors import PermanentError, ReplicatorError, RetryableError
from worker.ims.client import DEFAULT_PAGE_SIZE, ImsClient
from worker.ims.models import Image, KmsKey
from worker.queues import TaskName
from worker.steps.context import Next, StepContext
from worker.steps.outcomes import fail_permanently, finish, grant_slots, retry_later

MAX_IMAGE_BYTES = 128 * 1024**3
# From this many items of one account, listing pages beat one look-up per item: each page must answer at least
# HITS_PER_PAGE of them on average, or the walk stops and the rest are looked up one by one.
LISTING_MIN_ITEMS = 10
HITS_PER_PAGE = 5

Problem = tuple[ReasonCode, str]


def validate(ctx: StepContext, item_id: str) -> list[Next]:
    item = ctx.data.records.get_item(item_id)
    if item is None or not _start(ctx, item):
        return []
    account = ctx.account(item.account)
    if account is None:
        return finish(
            ctx,
            item,
            ItemState.REJECTED,
            reason=ReasonCode.UNKNOWN_ACCOUNT,
            message=f"account {item.account!r} is not configured on the workers",
        )
    try:
        client = ctx.client(item.account)
        image = client.get_image(item.image_id)
        problems, resolved = check_image(item, image, account.region)
        key_problems, cmk_id = check_key(client.find_key, item, image)
    except PermanentError as error:
        return fail_permanently(ctx, item, error, ItemState.REJECTED)
    except RetryableError as error:
        return retry_later(ctx, item, error, TaskName.VALIDATE)
    return _conclude(ctx, item, image, problems + key_problems, resolved, cmk_id, grant=True)


def validate_many(ctx: StepContext, items: list[ReplicationItem]) -> list[Next]:
    """Validate ``items`` (accepted, all of one account) together; returns what to send next."""
    account = ctx.account(items[0].account) if items else None
    if account is None or len(items) < LISTING_MIN_ITEMS:
        return [Next.for_item(TaskName.VALIDATE, item) for item in items]
    try:
        client = ctx.client(items[0].account)
        images = listed_images(client, {item.image_id for item in items})
        keys = {ref: client.find_key(ref) for ref in {item.kms_key for item in items if item.kms_key}}
    except ReplicatorError:  # each item meets the error again on its own, and is retried or refused alone
        return [Next.for_item(TaskName.VALIDATE, item) for item in items]
    nexts: list[Next] = []
    for item in items:
        image = images.get(item.image_id)
        if image is None:  # not among the pages walked: maybe shared, maybe missing; one look-up decides
            nexts.append(Next.for_item(TaskName.VALIDATE, item))
            continue
        if not _start(ctx, item):
            continue
        problems, resolved = check_image(item, image, account.region)
        key_problems, cmk_id = check_key(keys.__getitem__, item, image)
        nexts += _conclude(ctx, item, image, problems + key_problems, resolved, cmk_id, grant=False)
    return nexts + grant_slots(ctx, items[0].account)  # once for the lot


def listed_images(client: ImsClient, wanted: Collection[str]) -> dict[str, Image]:
    """The wanted images found in the account's private-image listing, walked while it pays its way."""
    found: dict[str, Image] = {}
    budget = max(1, len(wanted) // HITS_PER_PAGE) * DEFAULT_PAGE_SIZE  # images to look through at most
    for seen, image in enumerate(client.iter_images(**{"__imagetype": "private"}), 1):
        if image.id in wanted:
            found[image.id] = image
            if len(found) == len(wanted):
                break
        if seen >= budget:
            break
    return found


def _start(ctx: StepContext, item: ReplicationItem) -> bool:
    """Enter ``validating``; False if the item has moved on (redelivered after it did, or cancelled)."""
    if item.state is ItemState.ACCEPTED:
        # A fresh attempt starts its error budget anew; a redelivery (validating -> validating) keeps counting.
        return ctx.data.records.move(item, Event.START_VALIDATION, error_retries=0).ok
    if item.state is ItemState.VALIDATING:
        return ctx.data.records.move(item, Event.RESUME_VALIDATION).ok
    return False


def _conclude(
    ctx: StepContext,
    item: ReplicationItem,
    image: Image | None,
    problems: list[Problem],
    resolved: str | None,
    cmk_id: str | None,
    *,
    grant: bool,
) -> list[Next]:
    """Reject the item with its problems, or queue it for a slot of its account (and ``grant`` free slots)."""
    if problems:
        return finish(ctx, item, ItemState.REJECTED, reason=problems[0][0], message="; ".join(m for _, m in problems))
    assert image is not None and resolved is not None
    now = ctx.clock()
    moved = ctx.data.records.move(
        item,
        Event.VALIDATED,
        now=now,
        source_name=image.name,
        source_size=image.size_bytes,
        target_name=resolved,
        cmk_id=cmk_id,
    )
    if not moved.ok:
        return []  # cancelled while we were asking IMS
    # Arrival = the time it entered ``waiting`` (its updated_at), so the reconciler can re-queue it in place.
    ctx.data.slots.enqueue(item.account, item.id, now)
    return grant_slots(ctx, item.account) if grant else []


def check_image(item: ReplicationItem, image: Image | None, region: str) -> tuple[list[Problem], str | None]:
    """The image rules and the name and description rules; returns the problems and the resolved new name."""
    if image is None:
        return [(ReasonCode.IMAGE_NOT_FOUND, f"image {item.image_id} does not exist or is not visible")], None
    problems: list[Problem] = []
    if image.status != "active":
        problems.append((ReasonCode.IMAGE_NOT_ACTIVE, f"image status is {image.status!r}, not active (Normal)"))
    if image.is_full_ecs:
        problems.append((ReasonCode.FULL_ECS_IMAGE, "full-ECS images cannot be replicated within a region"))
    if image.is_iso:
        problems.append((ReasonCode.ISO_IMAGE, "images created from ISO files cannot be replicated within a region"))
    if image.size_bytes is not None and image.size_bytes > MAX_IMAGE_BYTES:
        problems.append(
            (ReasonCode.IMAGE_TOO_LARGE, f"image is {image.size_bytes / 1024**3:.1f} GB; the limit is 128 GB")
        )
    target = item.name or default_copy_name(region, image.name)
    if problem := name_problem(target):
        problems.append((ReasonCode.INVALID_NAME, f"new image name {target!r} {problem}"))
    if item.description and (problem := description_problem(item.description)):
        problems.append((ReasonCode.INVALID_DESCRIPTION, f"description {problem}"))
    return problems, target


def check_key(
    find_key: Callable[[str], KmsKey | None], item: ReplicationItem, image: Image | None
) -> tuple[list[Problem], str | None]:
    """The requested key exists and is enabled; returns its ID (None: an unencrypted copy)."""
    if not item.kms_key:
        return [], None
    key = find_key(item.kms_key)
    if key is None:
        return [(ReasonCode.KEY_NOT_FOUND, f"KMS key {item.kms_key!r} does not exist")], None
    if not key.enabled:
        return [(ReasonCode.KEY_DISABLED, f"KMS key {item.kms_key!r} is not enabled (key_state {key.key_state})")], None
    if image is not None and image.cmk_id == key.key_id:
        return [(ReasonCode.KEY_SAME_AS_SOURCE, f"the image is already encrypted with KMS key {item.kms_key!r}")], None
    return [], key.key_id
