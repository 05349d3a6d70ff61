"""Select: a batch's selector expanded into items, one IMS listing page per task, as the pages arrive.

Each ``replication.expand`` task (admit queue: it is how a selecting batch enters the pipeline) lists one page
(500 images, IMS's default ``limit``) from the marker the batch expects, keeps the images that pass every filter,
makes each an item from the template, stores the page's items in one script call, validates them from the very
records it listed (``validate_listed``: the same rules as any item, no second look-up), and sends the task for the
next page. So the listing is never held in memory beyond one page, items start copying while later pages are still
being listed, and the batch's ``max_batch_items`` bounds what one selector may create. The first page also reads
the account's image quota (one call), kept for the quota warning of later submissions.

Safe under redelivery: a page is stored only at its marker (``worker.data.selections``), and items of the page
that are still ``accepted`` are validated whether this delivery or an earlier one stored them. A selector whose
``kms_key`` does not exist, or an account IMS refuses, ends the selection ``failed`` with the reason; cloud errors
are retried with backoff, the selection kept alive meanwhile, up to ``retry_max_attempts`` in a row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from config.settings import AccountSettings
from worker.data.selections import EXPANDING, FAILED, Selection, selected_item_id
from worker.domain.followups import policy_tags
from worker.domain.item import ReplicationItem
from worker.domain.naming import UUID_RE
from worker.domain.retirement import Copy, Retention, kept_sources, lineage_tags, ranking, source_lineage
from worker.domain.selector import Selector, Template
from worker.domain.states import ItemState
from worker.errors import AuthenticationError, PermanentError, RetryableError
from worker.ims.client import DEFAULT_PAGE_SIZE, ImsClient
from worker.ims.models import Image, KmsKey
from worker.queues import TaskName
from worker.ratelimit import RateLimited
from worker.steps.context import Next, StepContext
from worker.steps.provenance import Copied, destination, listed_copies, untagged_copies
from worker.steps.scheduling import pool_named, read_quota
from worker.steps.validate import validate_listed

log = logging.getLogger("worker.select")

PAGE = DEFAULT_PAGE_SIZE


class SelectionRefused(Exception):
    """The selection cannot go on (a key it names does not exist): it ends ``failed`` with this message."""


@dataclass(frozen=True)
class SelectionSpec:
    """A stored selection, parsed: the selector, the template, whose images, and the batch's ``{date}``."""

    selector: Selector
    template: Template
    account: str
    region: str
    day: str
    policy: str | None = None  # a policy's run: its copies carry the policy's provenance tags
    retention: Retention | None = None  # a policy's rule: the sources it would retire at once are left out

    @classmethod
    def of(cls, spec: dict) -> SelectionSpec:
        retention = spec.get("retention")
        return cls(
            Selector.model_validate(spec["selector"]),
            Template.model_validate(spec["template"]),
            spec["account"],
            spec["region"],
            spec["day"],
            spec.get("policy"),
            None if retention is None else Retention.model_validate(retention),
        )

    def as_copy(self, image: Image) -> Copy:
        """The copy a run would make of ``image``, as retention sees it."""
        lineage_tag = self.retention.lineage_tag if self.retention is not None else None
        lineage = source_lineage(image.name, image.tag(lineage_tag) if lineage_tag else None)
        born = image.created_at.timestamp() if image.created_at is not None else 0.0
        return Copy(image.id, image.id, lineage, born)

    def ranking(self, found: Copied) -> list[Copy]:
        """The policy's copies its retention judges new sources by (``worker.domain.retirement.ranking``), read
        with its copies before a run's first page and kept for the others."""
        return [] if self.retention is None else ranking(found.live, self.retention)

    def retained(self, matched: list[Image], ranked: list[Copy], now: float) -> list[Image]:
        """The images whose copies the retention rule would keep beside the ``ranked`` copies (all of them without
        a rule): a retired copy's source is not copied again."""
        if self.retention is None:
            return matched
        kept = kept_sources(self.retention, [self.as_copy(image) for image in matched], ranked, now)
        copied = {c.source for c in ranked}
        return [image for image in matched if image.id in kept or image.id in copied]

    def copied(self, ctx: StepContext, client: ImsClient) -> Copied:
        """What the policy already copied, as its copies' tags say (``worker.steps.provenance``)."""
        return self.destination(ctx, client)[1]

    def destination(self, ctx: StepContext, client: ImsClient) -> tuple[ImsClient | None, Copied]:
        """A client of the project the policy's copies are made in, and its copies there (none in a destination
        IAM does not know: its items are refused)."""
        assert self.policy is not None
        target = self.template
        found = destination(ctx, self.account, client, target.target_region, target.target_project)
        return found, Copied(frozenset(), frozenset()) if found is None else listed_copies(found, self.policy)

    def listing(self, client: ImsClient, marker: str) -> tuple[list[Image], list[Image], str | None]:
        """``list_page``, a policy's own copies that lack its tags left out of what it keeps (they are no new
        sources: ``worker.steps.provenance.untagged_copies``)."""
        page, matched, cmk_id = list_page(client, self.selector, marker)
        if self.policy is not None:
            own = untagged_copies(client, self.template, self.region, page, matched)
            matched = [image for image in matched if image.id not in own]
        return page, matched, cmk_id


def expand(ctx: StepContext, batch_id: str, marker: str = "") -> list[Next]:
    selection = ctx.data.selections.load(batch_id)
    if selection is None or selection.progress.state != EXPANDING:
        return []
    spec = SelectionSpec.of(selection.spec)
    account = ctx.account(spec.account)
    if account is None:
        return _fail(ctx, batch_id, f"account {spec.account!r} is not configured on the workers")
    try:
        client = ctx.client(spec.account)
        ranked = selection.progress.ranking
        if spec.policy is not None and not selection.progress.copies_read:  # once per run, before its first page
            found = spec.copied(ctx, client)
            ranked = spec.ranking(found)
            ctx.data.selections.leave_out(batch_id, found.left_out, copied=len(found.sources), ranking=ranked)
        page, matched, cmk_id = spec.listing(client, marker)
        matched = spec.retained(matched, ranked, ctx.clock())
        keys = {ref: client.find_key(ref) for ref in {spec.template.kms_key} if ref}
        if not marker:  # one quota reading per selection, for the warning the next submissions give
            read_quota(ctx, pool_named(ctx, spec.account), read=client.get_quota)
    except SelectionRefused as refused:
        return _fail(ctx, batch_id, str(refused))
    except PermanentError as error:
        if isinstance(error, AuthenticationError):
            ctx.credentials_refused(spec.account, error)
        return _fail(ctx, batch_id, f"IMS refused the listing: {error}")
    except RetryableError as error:
        return _retry(ctx, batch_id, marker, error)
    return _store_page(ctx, selection, spec, Listed(account, client, marker, page, matched, keys))


def list_page(client: ImsClient, selector: Selector, marker: str) -> tuple[list[Image], list[Image], str | None]:
    """One page of the account's listing from ``marker``: every record listed, those the selector keeps, and the
    key ID its ``kms_key`` names (None without one)."""
    cmk_id = source_key(client, selector)
    page = client.list_images(**selector.listing_filters(cmk_id), limit=PAGE, marker=marker or None)
    return page, [image for image in page if selector.matches(image, cmk_id)], cmk_id


def source_key(client: ImsClient, selector: Selector) -> str | None:
    """The key ID the selector's ``kms_key`` names. An ID KMS no longer knows still selects the images it
    encrypted; an alias that names no key is refused."""
    ref = selector.kms_key
    if ref is None:
        return None
    key = client.find_key(ref)
    if key is not None:
        return key.key_id
    if UUID_RE.match(ref):
        return ref.lower()
    raise SelectionRefused(f"selector.kms_key: no KMS key {ref!r} in this account")


@dataclass(frozen=True)
class Listed:
    """One page as listed: whose, from where, every record, those kept, and the template's key looked up."""

    account: AccountSettings
    client: ImsClient
    marker: str
    page: list[Image]
    matched: list[Image]
    keys: dict[str, KmsKey | None]


def _store_page(ctx: StepContext, selection: Selection, spec: SelectionSpec, listed: Listed) -> list[Next]:
    batch_id, marker, page, matched = selection.batch_id, listed.marker, listed.page, listed.matched
    last = len(page) < PAGE
    room = max(0, ctx.settings.max_batch_items - selection.total)
    message = None
    if len(matched) > room:  # the batch is full: the selection ends here, and says so
        matched, last = matched[:room], True
        message = (
            f"the selector matched more images than a batch may hold ({ctx.settings.max_batch_items} items); "
            "it stopped there: select the rest with a narrower selector"
        )
    now = ctx.clock()
    unique = {image.id: image for image in matched}
    items = [_item(batch_id, spec, image, now) for image in unique.values()]
    next_marker = page[-1].id if page else marker
    status, created = ctx.data.selections.add_page(
        batch_id,
        marker,
        items,
        next_marker=next_marker,
        listed=len(page),
        matched=len(matched),
        last=last,
        message=message,
        now=now,
    )
    if status == "stopped":
        return []
    if created:
        log.info("batch %s: %d items from %d images listed", batch_id, created, len(page))
    # Validate what is still accepted: made now, or by an earlier delivery of this page that did not get that far.
    waiting = [i for i in ctx.data.records.get_items([i.id for i in items]) if i.state is ItemState.ACCEPTED]
    nexts = validate_listed(ctx, listed.account, listed.client, waiting, unique, listed.keys) if waiting else []
    if status == "ok" and not last:
        nexts.insert(0, Next(TaskName.EXPAND, {"batch_id": batch_id, "marker": next_marker}))
    return nexts


def _item(batch_id: str, spec: SelectionSpec, image: Image, now: float) -> ReplicationItem:
    asked = spec.template.item(image, spec.account, spec.region, spec.day)
    if spec.policy is not None:  # how the policy's later runs know this source is copied, and its lineage
        copy = spec.as_copy(image)
        tags = policy_tags(spec.policy, image.id, lineage_tags(copy.lineage, image.created_at))
        asked = asked.model_copy(update={"tags": {**(asked.tags or {}), **tags}})
    return ReplicationItem(
        id=selected_item_id(batch_id, image.id),
        batch_id=batch_id,
        account=spec.account,
        state=ItemState.ACCEPTED,
        created_at=now,
        updated_at=now,
        **asked.model_dump(exclude={"account"}),
    )


def _retry(ctx: StepContext, batch_id: str, marker: str, error: RetryableError) -> list[Next]:
    """The same page again after a backoff (our own limiter's refusals are not counted: nothing was sent)."""
    ctx.data.selections.touch(batch_id, ctx.clock())
    kwargs = {"batch_id": batch_id, "marker": marker}
    if isinstance(error, RateLimited):
        wait = min(error.retry_after or 1.0, ctx.settings.retry_max_delay / 2)
        return [Next(TaskName.EXPAND, kwargs, wait + ctx.rng.uniform(0, wait))]
    attempts = ctx.data.selections.count_error(batch_id)
    if attempts > ctx.settings.retry_max_attempts:
        return _fail(ctx, batch_id, f"listing failed {attempts - 1} times in a row; last error: {error}")
    delay = min(ctx.settings.retry_max_delay, max(error.retry_after or 0.0, ctx.backoff(attempts)))
    log.info("batch %s: listing failed (%s); page again in %.1fs", batch_id, error, delay)
    return [Next(TaskName.EXPAND, kwargs, delay)]


def _fail(ctx: StepContext, batch_id: str, message: str) -> list[Next]:
    if ctx.data.selections.stop(batch_id, FAILED, message, ctx.clock()):
        log.warning("batch %s: selection failed: %s", batch_id, message)
    return []
