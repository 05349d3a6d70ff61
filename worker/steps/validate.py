"""Validate: every rule of the seed, checked against IMS and KMS before any copy is attempted.

Rules (seed "Replicating Images Within a Region", ims-contract.md 1.4): the image exists and is visible, is
``active`` (Normal), is not a full-ECS image, not an ISO image, at most 128 GB; the new name (requested, or
``copy_<region>_<source name>``) and description follow IMS's rules; a requested KMS key exists and is enabled, an
alias such as ``ims/default`` resolved to its key ID. Encryption follows from the key: a key gives an encrypted
copy (re-keyed when the source was encrypted), no key an unencrypted one. Every rule is checked, so a rejected
item names all its problems at once (the reason code is the first one's).
"""

from __future__ import annotations

from worker.domain.item import ReplicationItem
from worker.domain.naming import default_copy_name, description_problem, name_problem
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState
from worker.errors import PermanentError, RetryableError
from worker.ims.client import ImsClient
from worker.ims.models import Image
from worker.queues import Task
from worker.steps.context import Next, Pipeline
from worker.steps.outcomes import fail_permanently, finish, grant_slots, retry_later

MAX_IMAGE_BYTES = 128 * 1024**3

Problem = tuple[ReasonCode, str]


def validate(p: Pipeline, item_id: str) -> list[Next]:
    item = p.store.get_item(item_id)
    if item is None or item.state not in (ItemState.ACCEPTED, ItemState.VALIDATING):
        return []  # redelivered after the item moved on, or cancelled
    # A fresh attempt starts its error budget anew; a redelivery (validating -> validating) keeps counting.
    if item.state is ItemState.ACCEPTED:
        fresh = p.store.transition(item.id, ItemState.VALIDATING, allowed_from=[ItemState.ACCEPTED], error_retries=0)
    else:
        fresh = p.store.transition(item.id, ItemState.VALIDATING, allowed_from=[ItemState.VALIDATING])
    if not fresh.ok:
        return []
    account = p.account(item.account)
    if account is None:
        return finish(
            p,
            item,
            ItemState.REJECTED,
            reason=ReasonCode.UNKNOWN_ACCOUNT,
            message=f"account {item.account!r} is not configured on the workers",
        )
    try:
        client = p.client(item.account)
        image = client.get_image(item.image_id)
        problems, resolved = check_image(item, image, account.region)
        key_problems, cmk_id = check_key(client, item, image)
    except PermanentError as error:
        return fail_permanently(p, item, error, ItemState.REJECTED)
    except RetryableError as error:
        return retry_later(p, item, error, Task.VALIDATE)
    problems += key_problems
    if problems:
        return finish(p, item, ItemState.REJECTED, reason=problems[0][0], message="; ".join(m for _, m in problems))
    assert image is not None and resolved is not None
    now = p.clock()
    moved = p.store.transition(
        item.id,
        ItemState.WAITING,
        allowed_from=[ItemState.VALIDATING],
        now=now,
        source_name=image.name,
        target_name=resolved,
        cmk_id=cmk_id,
    )
    if not moved.ok:
        return []  # cancelled while we were asking IMS
    # Arrival = the time it entered ``waiting`` (its updated_at), so the reconciler can re-queue it in place.
    p.slots.enqueue(item.account, item.id, now)
    return grant_slots(p, item.account)


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


def check_key(client: ImsClient, item: ReplicationItem, image: Image | None) -> tuple[list[Problem], str | None]:
    """The requested key exists and is enabled; returns its ID (None: an unencrypted copy)."""
    if not item.kms_key:
        return [], None
    key = client.find_key(item.kms_key)
    if key is None:
        return [(ReasonCode.KEY_NOT_FOUND, f"KMS key {item.kms_key!r} does not exist")], None
    if not key.enabled:
        return [(ReasonCode.KEY_DISABLED, f"KMS key {item.kms_key!r} is not enabled (key_state {key.key_state})")], None
    if image is not None and image.cmk_id == key.key_id:
        return [(ReasonCode.KEY_SAME_AS_SOURCE, f"the image is already encrypted with KMS key {item.kms_key!r}")], None
    return [], key.key_id
