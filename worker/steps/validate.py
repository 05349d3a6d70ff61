"""Validate: every rule of replication, checked against IMS, KMS and IAM before any copy is attempted.

Rules (Huawei's "Replicating Images Within a Region", docs/ims-api.md §2): the image exists and is visible, is
``active`` (Normal), is not a full-ECS image, not an ISO image, at most 128 GB; the new name (requested, or
``copy_<region>_<source name>``) and description follow IMS's rules; a requested KMS key exists and is enabled, an
alias such as ``ims/default`` resolved to its key ID. Encryption follows from the key: a key gives an encrypted
copy (re-keyed when the source was encrypted), no key an unencrypted one. Every rule is checked, so a rejected
item names all its problems at once (the reason code is the first one's).

The account's guardrails (``worker.domain.guardrails``) come first: an item whose ``share_with`` or
``target_region`` breaks them is rejected before any call (``SHARE_NOT_ALLOWED``, ``REGION_NOT_ALLOWED``), whatever
the API let through or whoever wrote it into Redis; an unencrypted copy of an encrypted source, once the image is
read, while the account's ``allow_decrypt`` is off (``DECRYPT_NOT_ALLOWED``).

Across regions (docs/ims-api.md §3) the same image rules hold, with the size limit of the source region, and also:
the source is not encrypted (``ENCRYPTED_CROSS_REGION``: IMS takes no key for such a copy, and the API refuses a
``kms_key`` with ``target_region`` at submission), an agency is configured (``AGENCY_NOT_CONFIGURED``), the
destination project exists (its ID is looked up in IAM: ``TARGET_PROJECT_NOT_FOUND``), and the account's
credentials work there: an IAM user's token scoped to the destination project is obtained now, so a credential
problem is found before any copy. The new name's default names the source region, as the console's does.

``validate`` looks one item up (``get_image``: one call). ``validate_many`` takes many items of one account at once
(an admit chunk): their images come from listing pages of the account's private images (500 a page), each key
reference is looked up once, and the same rules decide; an item the pages do not show, or every item when the
listing fails, goes the one-by-one way instead, where errors are retried and reported per item.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from config.settings import AccountSettings
from worker.data.walks import ListingWalks
from worker.domain import guardrails
from worker.domain.item import ReplicationItem
from worker.domain.naming import default_copy_name, description_problem, name_problem
from worker.domain.pools import pool_name_of
from worker.domain.reasons import ReasonCode
from worker.domain.states import Event, ItemState
from worker.errors import PermanentError, ReplicatorError, RetryableError
from worker.ims.client import DEFAULT_PAGE_SIZE, ImsClient
from worker.ims.models import Image, KmsKey
from worker.queues import TaskName
from worker.steps.context import Next, StepContext
from worker.steps.distribute import accept_share, shared_copy
from worker.steps.outcomes import fail_permanently, finish, retry_later
from worker.steps.scheduling import grant_slots, item_pool, pool_named, wait_for_slot, wait_for_slots

MAX_IMAGE_BYTES = 128 * 1024**3
# Cross-region copies out of CN-Guangzhou, CN-Shanghai2, CN-Shanghai1 and CN-Beijing4 may be up to 300 GB
# (docs/ims-api.md §3).
LARGE_CROSS_REGION_SOURCES = frozenset({"cn-south-1", "cn-east-2", "cn-east-3", "cn-north-4"})
MAX_LARGE_CROSS_REGION_BYTES = 300 * 1024**3
# From this many items of one account, listing pages beat one look-up per item: a project's private images are
# few (IMS's default quota is 50 a region), so the first page (500) usually answers them all, in one call and
# inside the admit task (no validate task each). Each page must answer at least HITS_PER_PAGE of them on
# average (the first page is always walked), or the walk stops and the rest are looked up one by one. Two, as a
# chunk of a batch that interleaves many accounts holds only a few items of each.
LISTING_MIN_ITEMS = 2
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
    if refused := check_guardrails(item, account):  # what the item asks breaks a guardrail: no call at all
        return _conclude(ctx, item, None, refused, None, grant=True)
    try:
        client = ctx.client(item.account)
        # A receiver item accepts its share first: until then IMS does not show it the image (docs/ims-api.md §9).
        if item.receives_share and (accepting := accept_share(ctx, item, client)) is not None:
            return accepting
        image = shared_copy(item) or client.get_image(item.image_id)
        problems, resolved = check_image(item, image, account.region)
        problems = check_decrypt(item, account, image) + problems
        key_problems, cmk_id = check_key(client.find_key, item, image)
        destination_problems, destination = check_destination(ctx, item, account, client)
    except PermanentError as error:
        return fail_permanently(ctx, item, error, ItemState.REJECTED)
    except RetryableError as error:
        return retry_later(ctx, item, error, TaskName.VALIDATE)
    problems += key_problems + destination_problems
    return _conclude(ctx, item, image, problems, resolved, grant=True, cmk_id=cmk_id, **destination)


def validate_many(ctx: StepContext, items: list[ReplicationItem]) -> list[Next] | None:
    """Validate ``items`` (accepted, all of one account) together; returns what to send next, or None when an
    outage or throttling held them back (they stay accepted for the admit chain's next pass)."""
    account = ctx.account(items[0].account) if items else None
    if account is None or len(items) < LISTING_MIN_ITEMS:
        return [Next.for_item(TaskName.VALIDATE, item) for item in items]
    try:
        client = ctx.client(items[0].account)
        batch_id, account_name = items[0].batch_id, items[0].account
        images = listed_images(client, {item.image_id for item in items}, Walk(ctx.data.walks, batch_id, account_name))
        keys = {ref: client.find_key(ref) for ref in {item.kms_key for item in items if item.kms_key}}
        going = [i for i in items if i.target_region and not check_guardrails(i, account)]
        for item in {(i.target_region, i.destination_project): i for i in going}.values():
            check_destination(ctx, item, account, client)  # once per destination; the items' checks reuse it
    except RetryableError:  # an outage or throttling: they stay accepted; the batch's admit chain comes back
        return None
    except ReplicatorError:  # each item meets the refusal again on its own, and is refused alone
        return [Next.for_item(TaskName.VALIDATE, item) for item in items]
    return validate_listed(ctx, account, client, items, images, keys)


def validate_listed(
    ctx: StepContext,
    account: AccountSettings,
    client: ImsClient,
    items: list[ReplicationItem],
    images: Mapping[str, Image],
    keys: Mapping[str, KmsKey | None],
) -> list[Next]:
    """Validate accepted items of one account from listed image records and looked-up keys (every key reference
    of the items in ``keys``); an item whose image is not among them gets a validate task of its own.

    The items move in two round trips for the lot (into ``validating``; then into ``waiting`` and their pool's
    line, in one transaction), where one by one took four each: at a batch's start the admit chunks' validation
    shares the cores with the first copy calls."""
    # Not among the pages walked: maybe shared, maybe missing; one look-up decides.
    nexts = [Next.for_item(TaskName.VALIDATE, item) for item in items if item.image_id not in images]
    validated: list[tuple[ReplicationItem, dict[str, object]]] = []
    for item in _start_all(ctx, [item for item in items if item.image_id in images]):
        image = images[item.image_id]
        if refused := check_guardrails(item, account):  # no look-up in its destination
            nexts += _conclude(ctx, item, image, refused, None, grant=False)
            continue
        problems, resolved = check_image(item, image, account.region)
        problems = check_decrypt(item, account, image) + problems
        key_problems, cmk_id = check_key(keys.__getitem__, item, image)
        try:
            destination_problems, destination = check_destination(ctx, item, account, client)
        except ReplicatorError:
            nexts.append(Next.for_item(TaskName.VALIDATE, item))
            continue
        problems += key_problems + destination_problems
        if problems:
            nexts += _conclude(ctx, item, image, problems, resolved, grant=False)
        else:
            assert resolved is not None
            validated.append((item, _waiting_fields(image, resolved, cmk_id=cmk_id, **destination)))
    wait_for_slots(ctx, validated, ctx.clock())
    for name in sorted({pool_name_of(item) for item in items}):  # once for the lot
        nexts += grant_slots(ctx, pool_named(ctx, name))
    return nexts


@dataclass(frozen=True)
class Walk:
    """An admit pass's walk of an account's listing, shared by its chunks (``worker.data.walks``)."""

    walks: ListingWalks
    batch_id: str
    account: str


def listed_images(client: ImsClient, wanted: Collection[str], walk: Walk | None = None) -> dict[str, Image]:
    """The wanted images found in the account's private-image listing, walked while it pays its way: with a
    ``walk``, first among the pages its pass has walked, then on from where it stopped."""
    found: dict[str, Image] = {}
    marker: str | None = None
    if walk is not None:
        found, marker, ended = walk.walks.known(walk.batch_id, walk.account, set(wanted))
        if ended:
            return found  # the pass has seen the whole listing: the others are not in it
    if len(found) == len(wanted):
        return found
    budget = max(1, (len(wanted) - len(found)) // HITS_PER_PAGE) * DEFAULT_PAGE_SIZE  # images to look through
    seen = 0
    for page in client.image_pages(marker=marker, **{"__imagetype": "private"}):
        if walk is not None:
            last = len(page) < DEFAULT_PAGE_SIZE
            walk.walks.record(walk.batch_id, walk.account, page, None if last else page[-1].id)
        found.update((image.id, image) for image in page if image.id in wanted)
        seen += len(page)
        if len(found) == len(wanted) or seen >= budget:
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


def _start_all(ctx: StepContext, items: list[ReplicationItem]) -> list[ReplicationItem]:
    """``_start`` for many items in one round trip: those now ``validating``. Items already there (a redelivered
    admit chunk) are taken as they are; their validation is repeated, as one by one."""
    fresh = [item for item in items if item.state is ItemState.ACCEPTED]
    moved = ctx.data.records.move_all(fresh, Event.START_VALIDATION, ctx.clock(), error_retries=0)
    started = {item.id for item, ok in zip(fresh, moved, strict=True) if ok}
    return [item for item in items if item.id in started or item.state is ItemState.VALIDATING]


def _conclude(
    ctx: StepContext,
    item: ReplicationItem,
    image: Image | None,
    problems: list[Problem],
    resolved: str | None,
    *,
    grant: bool,
    **fields: str | None,
) -> list[Next]:
    """Reject the item with its problems, or queue it for a slot of its pool (and ``grant`` free slots)."""
    if problems:
        return finish(ctx, item, ItemState.REJECTED, reason=problems[0][0], message="; ".join(m for _, m in problems))
    assert image is not None and resolved is not None
    if not wait_for_slot(ctx, item, ctx.clock(), **_waiting_fields(image, resolved, **fields)):
        return []  # cancelled while we were asking IMS
    return grant_slots(ctx, item_pool(ctx, item)) if grant else []


def _waiting_fields(image: Image, resolved: str, **fields: str | None) -> dict[str, object]:
    """What a validated item keeps of its image and the checks, for its copy."""
    return {"source_name": image.name, "source_size": image.size_bytes, "target_name": resolved, **fields}


def check_image(item: ReplicationItem, image: Image | None, region: str) -> tuple[list[Problem], str | None]:
    """The image rules and the name and description rules; returns the problems and the resolved new name."""
    if image is None:
        return [(ReasonCode.IMAGE_NOT_FOUND, f"image {item.image_id} does not exist or is not visible")], None
    problems: list[Problem] = []
    cross = item.target_region is not None
    how = "across regions" if cross else "within a region"
    if image.status != "active":
        problems.append((ReasonCode.IMAGE_NOT_ACTIVE, f"image status is {image.status!r}, not active (Normal)"))
    if image.is_full_ecs:
        # Across regions IMS copies them into a CBR vault (vault_id), which this tool does not manage.
        detail = " without a CBR vault, which this tool does not manage" if cross else ""
        problems.append((ReasonCode.FULL_ECS_IMAGE, f"full-ECS images cannot be replicated {how}{detail}"))
    if image.is_iso:
        problems.append((ReasonCode.ISO_IMAGE, f"images created from ISO files cannot be replicated {how}"))
    if cross and image.is_encrypted:
        encrypted = "encrypted images cannot be replicated across regions; copy it unencrypted in its region first"
        problems.append((ReasonCode.ENCRYPTED_CROSS_REGION, encrypted))
    limit = max_copy_bytes(region, cross)
    if image.size_bytes is not None and image.size_bytes > limit:
        size = f"image is {image.size_bytes / 1024**3:.1f} GB; the limit {how} is {limit // 1024**3} GB"
        problems.append((ReasonCode.IMAGE_TOO_LARGE, size))
    target = item.name or default_copy_name(region, image.name)
    if problem := name_problem(target):
        problems.append((ReasonCode.INVALID_NAME, f"new image name {target!r} {problem}"))
    if item.description and (problem := description_problem(item.description)):
        problems.append((ReasonCode.INVALID_DESCRIPTION, f"description {problem}"))
    return problems, target


def check_guardrails(item: ReplicationItem, account: AccountSettings) -> list[Problem]:
    """The account's guardrails that what the item asks breaks: sharing, a destination region
    (``worker.domain.guardrails``). Checked first, so that such an item makes no call."""
    breaches = guardrails.item_breaches(
        item.account, account, share_with=item.share_with, target_region=item.target_region
    )
    return [(breach.reason, str(breach)) for breach in breaches]


def check_decrypt(item: ReplicationItem, account: AccountSettings, image: Image | None) -> list[Problem]:
    """The guardrail only the source can decide: an unencrypted copy of an encrypted image while the account's
    ``allow_decrypt`` is off. Not across regions, where an encrypted source is refused whatever the setting
    (``ENCRYPTED_CROSS_REGION``)."""
    if image is None or item.target_region is not None:
        return []
    encrypted = image.is_encrypted
    breach = guardrails.decrypt_breach(item.account, account, source_encrypted=encrypted, kms_key=item.kms_key)
    return [(breach.reason, str(breach))] if breach else []


def max_copy_bytes(source_region: str, cross_region: bool) -> int:
    if cross_region and source_region in LARGE_CROSS_REGION_SOURCES:
        return MAX_LARGE_CROSS_REGION_BYTES
    return MAX_IMAGE_BYTES


def check_destination(
    ctx: StepContext, item: ReplicationItem, account: AccountSettings, client: ImsClient
) -> tuple[list[Problem], dict[str, str | None]]:
    """A cross-region item's agency, destination project and credentials there; returns the problems and the
    resolved fields (``target_project_id``, ``agency_name``). Nothing for an in-region item."""
    region, name = item.target_region, item.destination_project
    if region is None or name is None:
        return [], {}
    problems: list[Problem] = []
    agency = item.agency or account.agency_name
    if agency is None:
        setting = f"IMSREP_ACCOUNTS__{item.account.upper()}__AGENCY_NAME"
        problems.append(
            (
                ReasonCode.AGENCY_NOT_CONFIGURED,
                f"a cross-region copy needs an IAM agency: give the item's agency or set {setting}",
            )
        )
    project_id = destination_project_id(ctx, item.account, account, client, region, name)
    if project_id is None:
        missing = f"IAM knows no project {name!r} in {region} that the account can use"
        problems.append((ReasonCode.TARGET_PROJECT_NOT_FOUND, missing))
    else:
        if item.share_with and project_id in item.share_with:
            owner = f"share_with names {project_id}, the destination project, which owns the copy"
            problems.append((ReasonCode.SHARE_PROJECT_INVALID, owner))
        assert ctx.destinations is not None
        ctx.destinations(item.account, region, project_id).authenticate()  # an IAM user's token, before the copy
    return problems, {"target_project_id": project_id, "agency_name": agency}


def destination_project_id(
    ctx: StepContext, account_name: str, account: AccountSettings, client: ImsClient, region: str, name: str
) -> str | None:
    """The ID of project ``name`` in ``region``: configured (the region's default project), else from IAM."""
    configured = account.regions.get(region)
    if name == region and configured is not None and configured.project_id:
        return configured.project_id
    key = (account_name, region, name)
    if key not in ctx.project_ids:
        found = client.find_project_id(name, account.region_endpoints(region)[1])
        if found is None:
            return None
        ctx.project_ids[key] = found
    return ctx.project_ids[key]


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
