"""Plan: a batch request judged exactly as a real run would judge it, with nothing copied.

The verdicts come from the validation rules themselves (``check_image``, ``check_key``, ``check_destination`` of
``worker.steps.validate``) on the same records a run would read: the asked items' images from listing pages of the
account (``listed_images``; one walk for all of an account's items), those the pages do not show one by one
(``get_image``), each key reference looked up once; a selector's images from its listing pages (as
``replication.expand`` lists them) made into items by its template. Then, per account, the private-image quota
(``get_quota``: one call) against the in-region copies the plan would make (and the items of the account already
waiting for a slot), and per pool a duration forecast: the items' predicted copy times (the pool's learned
``seconds = a + b * bytes`` model, ``worker.steps.forecast``, or before any copy has finished a stated default of
``DEFAULT_COPY_SECONDS`` plus ``DEFAULT_SECONDS_PER_GIB``) over the pool's slots. The account's guardrails are
judged first, as validation judges them (``check_guardrails``, then ``check_decrypt`` with the image).

One ``replication.plan`` task per stage (``worker.data.plans``): ``items`` (all asked items), ``lookup`` (up to
``LOOKUPS`` items the pages did not show, then the next lookup task), ``page`` (one listing page of the selector),
``final`` (quota, forecast, summary). A stage done twice stores nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from config.settings import AccountSettings
from worker.data.plans import FINAL, ITEMS, LOOKUP, PAGE, PLANNING, PlanRecord
from worker.domain.item import ReplicationItem
from worker.domain.pools import pool_name, slot_limit, split_pool
from worker.domain.reasons import ReasonCode
from worker.domain.retirement import Judged, Verdict
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.errors import AuthenticationError, PermanentError, RetryableError
from worker.ims.client import ImsClient
from worker.ims.models import Image, KmsKey
from worker.queues import TaskName
from worker.ratelimit import RateLimited
from worker.steps.context import Next, StepContext
from worker.steps.forecast import duration
from worker.steps.retire import judge
from worker.steps.scheduling import pool_named, read_quota
from worker.steps.select import PAGE as PAGE_SIZE
from worker.steps.select import SelectionRefused, SelectionSpec
from worker.steps.validate import (
    LISTING_MIN_ITEMS,
    check_decrypt,
    check_destination,
    check_guardrails,
    check_image,
    check_key,
    listed_images,
)

log = logging.getLogger("worker.plan")

LOOKUPS = 200  # images looked up one by one per task
# Before an account has finished a copy there is nothing to learn from: a stated default, not a measurement.
DEFAULT_COPY_SECONDS = 300.0
DEFAULT_SECONDS_PER_GIB = 30.0
COPY, REFUSED = "copy", "refused"
GIB = 1024**3


class PlanFailed(Exception):
    """Nothing more can be judged (an account IMS refuses): the plan ends ``failed`` with this message."""


def plan(ctx: StepContext, plan_id: str, stage: str = ITEMS, marker: str = "") -> list[Next]:
    record = ctx.data.plans.load(plan_id)
    if record is None or record.state != PLANNING or (record.stage, record.marker) != (stage, marker):
        return []  # done already (a redelivered message), or expired
    try:
        if stage == ITEMS:
            return _items(ctx, record)
        if stage == LOOKUP:
            return _lookups(ctx, record)
        if stage == PAGE:
            return _page(ctx, record)
        return _final(ctx, record)
    except (PlanFailed, SelectionRefused) as failure:
        return _fail(ctx, plan_id, str(failure))
    except AuthenticationError as error:
        return _fail(ctx, plan_id, f"the account's credentials were refused: {error}")
    except RetryableError as error:
        return _retry(ctx, record, error)


# Stages ---------------------------------------------------------------------------------------------------------
def _items(ctx: StepContext, record: PlanRecord) -> list[Next]:
    asked = [_asked(record.plan_id, index, fields) for index, fields in enumerate(ctx.data.plans.asked(record.plan_id))]
    verdicts: dict[int, dict[str, Any]] = {}
    missing: list[int] = []
    by_account: dict[str, list[tuple[int, ReplicationItem]]] = defaultdict(list)
    for index, item in enumerate(asked):
        by_account[item.account].append((index, item))
    for name, group in by_account.items():
        account = ctx.account(name)
        if account is None:
            unknown = f"account {name!r} is not configured on the workers"
            verdicts.update({i: _refused(item, [(ReasonCode.UNKNOWN_ACCOUNT, unknown)], None, i) for i, item in group})
            continue
        client = ctx.client(name)
        wanted = {item.image_id for _, item in group}
        images = listed_images(client, wanted) if len(group) >= LISTING_MIN_ITEMS else {}
        keys = _keys(client, (item.kms_key for _, item in group))
        for index, item in group:
            image = images.get(item.image_id)
            if image is None:  # as validate_many does: the one-by-one look-up decides
                missing.append(index)
            else:
                verdicts[index] = {**_judge(ctx, item, image, account, client, keys.__getitem__), "index": index}
    ctx.data.plans.put_verdicts(record.plan_id, verdicts, ctx.settings.plan_seconds)
    if missing:
        return _advance(ctx, record, (LOOKUP, "0"), missing=_json(missing))
    return _after_items(ctx, record)


def _lookups(ctx: StepContext, record: PlanRecord) -> list[Next]:
    start = int(record.marker)
    batch = record.missing[start : start + LOOKUPS]
    fields = ctx.data.plans.asked(record.plan_id)
    verdicts: dict[int, dict[str, Any]] = {}
    for index in batch:
        item = _asked(record.plan_id, index, fields[index])
        account = ctx.account(item.account)
        assert account is not None  # items of unknown accounts were judged already
        client = ctx.client(item.account)
        image = client.get_image(item.image_id)
        verdicts[index] = {**_judge(ctx, item, image, account, client, client.find_key), "index": index}
    ctx.data.plans.put_verdicts(record.plan_id, verdicts, ctx.settings.plan_seconds)
    end = start + len(batch)
    if end < len(record.missing):
        return _advance(ctx, record, (LOOKUP, str(end)))
    return _after_items(ctx, record, at=(LOOKUP, record.marker))


def _after_items(ctx: StepContext, record: PlanRecord, at: tuple[str, str] | None = None) -> list[Next]:
    """On to the selector's first page, or straight to the summary (in this task: it is one more call)."""
    if record.selection is not None:
        return _advance(ctx, record, (PAGE, ""), at=at)
    if not ctx.data.plans.advance(record.plan_id, at or (record.stage, record.marker), (FINAL, ""), ctx.clock()):
        return []
    moved = ctx.data.plans.load(record.plan_id)
    return _final(ctx, moved) if moved is not None else []


def _page(ctx: StepContext, record: PlanRecord) -> list[Next]:
    assert record.selection is not None
    spec = SelectionSpec.of(record.selection)
    account = ctx.account(spec.account)
    if account is None:
        raise PlanFailed(f"account {spec.account!r} is not configured on the workers")
    client = ctx.client(spec.account)
    ranked = record.ranking
    if spec.policy is not None and not record.marker:  # a policy's run leaves out what it copied: so does its plan
        destination, found = spec.destination(ctx, client)
        ranked = spec.ranking(found)
        ctx.data.plans.leave_out(record.plan_id, found.left_out, ttl=ctx.settings.plan_seconds, ranking=ranked)
        if spec.retention is not None and destination is not None:  # and what the run's retention would do
            judged: list[Judged] = []
            judge(destination, spec.retention, found, ctx.clock(), judged, act=False)
            ctx.data.plans.note_retirements(record.plan_id, [j.to_dict() for j in judged])
    page, matched, _ = spec.listing(client, record.marker)
    matched = spec.retained(matched, ranked, ctx.clock())
    keys = _keys(client, [spec.template.kms_key])
    last = len(page) < PAGE_SIZE
    room = max(0, ctx.settings.max_batch_items - record.judged)
    message = None
    if len(matched) > room:
        matched, last = matched[:room], True
        message = (
            f"the selector matched more images than a batch may hold ({ctx.settings.max_batch_items} items); "
            "the plan, like a run, stops there"
        )
    unique = {image.id: image for image in matched}
    verdicts = []
    for image in unique.values():
        asked = spec.template.item(image, spec.account, spec.region, spec.day)
        item = _asked(record.plan_id, "page", {**asked.model_dump(), "account": spec.account})
        verdicts.append(_judge(ctx, item, image, account, client, keys.__getitem__))
    next_marker = page[-1].id if page else record.marker
    to = (FINAL, "") if last else (PAGE, next_marker)
    stored = ctx.data.plans.add_page(
        record.plan_id,
        record.marker,
        verdicts,
        to=to,
        listed=len(page),
        matched=len(matched),
        ttl=ctx.settings.plan_seconds,
        now=ctx.clock(),
        message=message,
    )
    if not stored:
        return []
    if last:
        moved = ctx.data.plans.load(record.plan_id)
        return _final(ctx, moved) if moved is not None else []
    return [_next(record.plan_id, PAGE, next_marker)]


def _final(ctx: StepContext, record: PlanRecord) -> list[Next]:
    summary = summarise(ctx, list(ctx.data.plans.all_verdicts(record.plan_id)))
    if record.retirements is not None:  # a policy's plan with a retention rule
        summary["retirements"] = record.retirements
        summary["would_retire"] = sum(1 for j in record.retirements if j["verdict"] != Verdict.KEPT_SHARED.value)
    if ctx.data.plans.finish(record.plan_id, summary, ctx.clock()):
        log.info("plan %s: %d items, %d would copy", record.plan_id, summary["items"], summary["would_copy"])
    return []


# Judging ----------------------------------------------------------------------------------------------------------
def _judge(
    ctx: StepContext,
    item: ReplicationItem,
    image: Image | None,
    account: AccountSettings,
    client: ImsClient,
    find_key: Callable[[str], KmsKey | None],
) -> dict[str, Any]:
    """The verdict a run would reach: the same rules, in the same order, the first problem's reason."""
    if refused := check_guardrails(item, account):
        return _refused(item, refused, image)
    try:
        problems, resolved = check_image(item, image, account.region)
        problems = check_decrypt(item, account, image) + problems
        key_problems, cmk_id = check_key(find_key, item, image)
        destination_problems, destination = check_destination(ctx, item, account, client)
    except AuthenticationError:
        raise
    except PermanentError as error:  # a run refuses the item with the error's reason (fail_permanently)
        return _refused(item, [(error.reason, str(error))], image)
    problems += key_problems + destination_problems
    if problems:
        return _refused(item, problems, image)
    assert image is not None
    return {
        **_about(item, image),
        "verdict": COPY,
        "target_name": resolved,
        "cmk_id": cmk_id,
        "target_project_id": destination.get("target_project_id"),
    }


def _refused(item: ReplicationItem, problems: list, image: Image | None, index: int | None = None) -> dict[str, Any]:
    reason = problems[0][0]
    return {
        **({"index": index} if index is not None else {}),
        **_about(item, image),
        "verdict": REFUSED,
        "reason": reason.value if hasattr(reason, "value") else str(reason),
        "message": "; ".join(message for _, message in problems),
    }


def _about(item: ReplicationItem, image: Image | None) -> dict[str, Any]:
    return {
        "image_id": item.image_id,
        "account": item.account,
        "mode": item.mode,
        "name": item.name,
        "kms_key": item.kms_key,
        "source_name": image.name if image else None,
        "size_bytes": image.size_bytes if image else None,
        # Where a distribution would hand the copy on (an item's or a template's receivers), shown, not judged: a
        # receiver's key and quota are read by its own item's validation.
        "receivers": [r.model_dump(mode="json", exclude_none=True) for r in item.distribute or ()] or None,
    }


def _asked(plan_id: str, index: int | str, fields: dict[str, Any]) -> ReplicationItem:
    """An asked item as the record a run would judge (never stored)."""
    spec = ItemSpec.model_validate({k: v for k, v in fields.items() if k != "account"})
    return ReplicationItem(
        id=f"{plan_id}-{index}",
        batch_id=plan_id,
        account=fields["account"],
        state=ItemState.ACCEPTED,
        created_at=0.0,
        updated_at=0.0,
        **spec.model_dump(exclude={"account"}),
    )


def _keys(client: ImsClient, refs: Iterable[str | None]) -> dict[str, KmsKey | None]:
    return {ref: client.find_key(ref) for ref in set(refs) if ref}


# The summary --------------------------------------------------------------------------------------------------------
def summarise(ctx: StepContext, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals, refusals by reason, and per account its quota and per pool a forecast."""
    by_reason: dict[str, int] = defaultdict(int)
    copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    accounts: dict[str, dict[str, Any]] = {}
    for verdict in verdicts:
        entry = accounts.setdefault(verdict["account"], {"account": verdict["account"], "would_copy": 0, "refused": 0})
        if verdict["verdict"] == COPY:
            entry["would_copy"] += 1
            copies[pool_name(verdict["account"], verdict["mode"])].append(verdict)
        else:
            entry["refused"] += 1
            by_reason[verdict["reason"]] += 1
    for name, entry in accounts.items():
        pools = {pool: items for pool, items in copies.items() if split_pool(pool)[0] == name}
        entry["quota"] = _quota(ctx, name, len(pools.get(name, [])))
        entry["forecast"] = [duration_estimate(ctx, pool, items) for pool, items in sorted(pools.items())]
    would_copy = sum(e["would_copy"] for e in accounts.values())
    over = sum((e["quota"] or {}).get("over_quota", 0) for e in accounts.values())
    return {
        "items": len(verdicts),
        "would_copy": would_copy,
        "refused": len(verdicts) - would_copy,
        "by_reason": dict(sorted(by_reason.items())),
        "over_quota": over,
        "accounts": sorted(accounts.values(), key=lambda e: e["account"]),
    }


def _quota(ctx: StepContext, account: str, copies: int) -> dict[str, Any] | None:
    """The account's quota against the in-region copies the plan would make (a cross-region copy counts in its
    destination project's quota, which is not read here)."""
    if ctx.account(account) is None:
        return None
    reading = read_quota(ctx, pool_named(ctx, account), read=ctx.client(account).get_quota)
    assert reading is not None  # read by the call given, whose errors reach the caller
    waiting = ctx.data.slots.queued(account)  # items of other batches already in line for the same headroom
    return {
        "quota": reading.quota,
        "used": reading.used,
        "headroom": reading.headroom,
        "waiting_before": waiting,
        "over_quota": max(0, copies + waiting - reading.headroom) if copies else 0,
    }


def duration_estimate(ctx: StepContext, pool: str, copies: list[dict[str, Any]]) -> dict[str, Any]:
    """How long the pool's copies would take: their predicted durations over its slots."""
    slots = slot_limit(ctx.settings, pool) or 1
    samples = ctx.data.accounts.durations(pool)
    if samples:
        seconds = [duration(samples, c.get("size_bytes")) for c in copies]
        basis = f"learned from the pool's last {len(samples)} copies"
    else:
        seconds = [DEFAULT_COPY_SECONDS + DEFAULT_SECONDS_PER_GIB * (c.get("size_bytes") or 0) / GIB for c in copies]
        basis = (
            f"default model, no copy finished in this pool yet: {DEFAULT_COPY_SECONDS:g} s + "
            f"{DEFAULT_SECONDS_PER_GIB:g} s per GiB"
        )
    # Copies share the slots; fewer copies than slots still take as long as the longest one.
    total = max(sum(seconds) / slots, max(seconds, default=0.0))
    return {
        "pool": pool,
        "copies": len(copies),
        "slots": slots,
        "seconds": round(total, 1),
        "per_copy_seconds": round(sum(seconds) / len(seconds), 1) if seconds else None,
        "learned": bool(samples),
        "basis": basis,
    }


# Moving on ---------------------------------------------------------------------------------------------------------
def _advance(
    ctx: StepContext, record: PlanRecord, to: tuple[str, str], at: tuple[str, str] | None = None, **fields: Any
) -> list[Next]:
    if not ctx.data.plans.advance(record.plan_id, at or (record.stage, record.marker), to, ctx.clock(), **fields):
        return []
    return [_next(record.plan_id, *to)]


def _next(plan_id: str, stage: str, marker: str, countdown: float = 0.0) -> Next:
    return Next(TaskName.PLAN, {"plan_id": plan_id, "stage": stage, "marker": marker}, countdown)


def _retry(ctx: StepContext, record: PlanRecord, error: RetryableError) -> list[Next]:
    ctx.data.plans.touch(record.plan_id, ctx.clock())
    if isinstance(error, RateLimited):
        wait = min(error.retry_after or 1.0, ctx.settings.retry_max_delay / 2)
        return [_next(record.plan_id, record.stage, record.marker, wait + ctx.rng.uniform(0, wait))]
    attempts = ctx.data.plans.count_error(record.plan_id)
    if attempts > ctx.settings.retry_max_attempts:
        return _fail(ctx, record.plan_id, f"IMS failed {attempts - 1} times in a row; last error: {error}")
    delay = min(ctx.settings.retry_max_delay, max(error.retry_after or 0.0, ctx.backoff(attempts)))
    return [_next(record.plan_id, record.stage, record.marker, delay)]


def _fail(ctx: StepContext, plan_id: str, message: str) -> list[Next]:
    ctx.data.plans.fail(plan_id, message)
    log.warning("plan %s failed: %s", plan_id, message)
    return []


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
