"""Request and response bodies as the OpenAPI document shows them. Times are ISO 8601, UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, ValidatorFunctionWrapHandler, field_validator

from api.accounts import AccountView
from worker.data import BatchSummary, PoolStatus
from worker.domain.distribution import Receiver
from worker.domain.followups import DistributeResult, Followups, ReceiverVerdict, ShareResult, Status, TagsResult
from worker.domain.item import ReplicationItem, Transition
from worker.domain.naming import LABEL_RE
from worker.domain.pools import split_pool
from worker.domain.priority import Priority
from worker.domain.reasons import ReasonCode, next_step
from worker.domain.selector import Selector, Template
from worker.domain.spec import ItemOptions, ItemSpec
from worker.domain.states import ItemState
from worker.domain.waits import WAITS, BlockedBy

_ID = {"pattern": r"^[0-9a-f]{32}$", "examples": ["3f2a9c0e5b7d4e1f8a6c2b9d0e4f7a13"]}
_IMAGE = "b6f1a7de-37d4-4f2c-9a0e-3c7e1d2f5a81"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


_BLOCKED_BY = (
    "slots (every slot busy with this system's copies: the line moves as they end), outage (the account's circuit "
    "is open), quota (the project's image quota has no room) or ims_full (IMS counts copies made elsewhere "
    "against the slots)"
)
_HINT = "What holds the wait and the next step a user can take (raise the quota, wait for the outage, ...)"


def _wait(status: PoolStatus | None) -> dict[str, Any]:
    """``blocked_by`` and ``blocked_hint`` of something waiting in ``status``'s line (nothing: both null)."""
    if status is None:
        return {"blocked_by": None, "blocked_hint": None}
    return {"blocked_by": status.wait_reason, "blocked_hint": status.hint}


# Requests ------------------------------------------------------------------------------------------------------
class BatchRequest(BaseModel):
    """A batch of images to replicate; ``defaults`` fill whatever an item leaves out.

    The one model of the body, for the document and the parser alike: the envelope is validated here, while the items,
    the defaults and the label are kept as sent so that ``api.validation`` checks each one on its own and reports every
    bad item, not the first.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [{"image_id": _IMAGE}, {"image_id": _IMAGE, "name": "web-2024-rekeyed"}],
                    "defaults": {"kms_key": "ims/default", "description": "re-keyed copy"},
                }
            ]
        },
    )

    items: list[ItemSpec] = Field(
        default_factory=list,
        description="Up to max_batch_items (default 10000) items; at least one unless a selector is given",
    )
    defaults: ItemOptions | None = None
    selector: Selector | None = Field(
        None,
        description="Select images by filter instead of (or beside) listing them: the worker pages through the "
        "account's images and makes an item of each one every filter keeps (an image once, however often "
        "it is seen); together with items, up to max_batch_items in all",
    )
    template: Template | None = Field(
        None,
        description="What each selected image becomes; needs a selector. Its `distribute` hands every copy to its "
        "receivers as an item's does, by the same rules, each receiver's account in the caller's scope",
    )
    plan: bool = Field(
        False,
        description="Judge it, copy nothing: the answer names a plan (`GET /v1/plans/{plan_id}`) with each item's "
        "verdict exactly as a run would reach it, the account's quota headroom and a duration forecast",
    )
    label: str | None = Field(
        None, pattern=LABEL_RE.pattern, description="Find the batch by it later (`GET /v1/batches?label=`)"
    )
    priority: Priority = Field(
        Priority.NORMAL,
        description="Its share of its accounts' slots while other batches wait too: high gets 4 slots for a low "
        "batch's 1, normal 2; any batch that starts waiting takes the next slots that free up (docs/architecture.md)",
    )

    @field_validator("items", "defaults", "selector", "template", "plan", "label", mode="wrap")
    @classmethod
    def _as_sent(cls, value: Any, _handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        """Kept as sent (the document still shows their models): api.validation checks each on its own."""
        if info.field_name == "items" and not isinstance(value, list):
            raise ValueError("Input should be a valid list")
        return value


# Responses ----------------------------------------------------------------------------------------------------
class FieldErrorOut(BaseModel):
    index: int | None = Field(None, description="Position of the bad item in `items`; null for the request itself")
    field: str = Field(..., examples=["name"])
    rule: str = Field(..., examples=["must not start or end with a space"])


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field("about:blank", description="`about:blank`: the status code says what kind of error it is")
    title: str = Field(..., description="The HTTP status phrase", examples=["Unprocessable Content"])
    status: int = Field(..., examples=[422])
    detail: str = Field(..., examples=["2 of 10 items are invalid; nothing was stored"])
    instance: str = Field(..., description="The request's path", examples=["/v1/batches"])
    errors: list[FieldErrorOut] | None = Field(None, description="A refused request's broken rules, one per field")


class BatchAccepted(BaseModel):
    batch_id: str = Field(..., **_ID)
    accepted: int = Field(..., description="Number of items stored", examples=[2])
    item_ids: list[str] = Field(..., description="Item IDs in the order the items were given")
    selecting: bool = Field(False, description="A selector will add items as the worker lists the images")


class QuotaNoteOut(BaseModel):
    """An account's last known image quota against what the batch asks of it."""

    account: str
    items: int = Field(..., description="In-region copies this batch asks of the account")
    waiting: int = Field(..., description="The account's items already waiting for a slot")
    quota: int
    used: int
    headroom: int
    read_at: datetime = Field(..., description="When the quota was read (by a plan or a selector)")
    over_quota: int = Field(..., description="Items that will wait for quota: items + waiting - headroom")


class BatchAcceptedWithQuota(BatchAccepted):
    quota: list[QuotaNoteOut] = Field(
        default_factory=list, description="Per account whose quota has been read: the batch against it"
    )
    warnings: list[str] = Field(default_factory=list, description="What will not go as asked, e.g. over quota")


class PlanAccepted(BaseModel):
    plan_id: str = Field(..., **_ID)
    state: Literal["planning"] = "planning"
    accepted: int = Field(..., description="Items given in the request (a selector's come as it is listed)")
    selecting: bool = False


class VerdictOut(BaseModel):
    """What a run would do with one item."""

    index: int = Field(..., description="Position: the request's items first, then the selector's images")
    image_id: str
    account: str
    mode: str
    verdict: Literal["copy", "refused"]
    reason: str | None = Field(None, description="Why not, as a run's item would end (`rejected` with this code)")
    message: str | None = None
    source_name: str | None = None
    size_bytes: int | None = None
    target_name: str | None = Field(None, description="The copy's name")
    kms_key: str | None = None
    cmk_id: str | None = Field(None, description="The key the copy would be encrypted with; null: unencrypted")
    receivers: list[Receiver] | None = Field(
        None,
        description="The receivers its distribution would hand the copy to (the item's or the template's "
        "`distribute`): each would accept the share and make its own copy under its key. Shown, not judged: a "
        "receiver's key and quota are checked by its own item when the copy is distributed",
    )


class PlanOut(BaseModel):
    plan_id: str = Field(..., **_ID)
    created_at: datetime
    state: Literal["planning", "done", "failed"]
    label: str | None = None
    message: str | None = Field(None, description="Why it failed, or that a selector stopped at the batch limit")
    listed: int = Field(0, description="Images a selector listed so far")
    summary: dict[str, Any] | None = Field(
        None,
        description="Once done: items, would_copy, refused, by_reason, over_quota, and per account its quota "
        "(quota, used, headroom, waiting_before, over_quota) and per pool a forecast (copies, slots, seconds, "
        "per_copy_seconds, learned, basis); a policy's plan with a retention rule also retirements (each copy the "
        "rule would not keep: image_id, source, lineage, verdict) and would_retire",
    )
    items: list[VerdictOut] = Field(default_factory=list, description="A page of verdicts")
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next page; null on the last page")


class SelectionOut(BaseModel):
    """How far a batch's selector has got."""

    state: Literal["expanding", "done", "failed", "cancelled"] = Field(
        ..., description="`expanding` while pages of images are still being listed"
    )
    listed: int = Field(..., description="Images IMS listed so far")
    matched: int = Field(..., description="Of them, those every filter kept")
    created: int = Field(..., description="Items made from them (an image already in the batch makes none)")
    message: str | None = Field(None, description="Why it failed, or that it stopped at the batch's item limit")


class ReplicationAccepted(BaseModel):
    batch_id: str = Field(..., **_ID)
    item_id: str = Field(..., **_ID)


class LineOut(BaseModel):
    """A pool's line as one batch meets it: the batch's items in it, what holds them and what to do."""

    account: str
    mode: str = Field(..., description="in-region or cross-region: IMS counts the two kinds of copy apart")
    items: int = Field(..., description="This batch's items in the line, waiting for a slot")
    blocked_by: BlockedBy = Field(..., description=_BLOCKED_BY)
    next_step: str = Field(..., description="The next step in a few words", examples=[WAITS[BlockedBy.QUOTA].next_step])
    blocked_hint: str = Field(..., description=_HINT)

    @classmethod
    def of(cls, status: PoolStatus, items: int) -> LineOut:
        account, mode = split_pool(status.pool.name)
        return cls(
            account=account,
            mode=mode,
            items=items,
            next_step=WAITS[status.wait_reason].next_step,
            **_wait(status),
        )


class BatchStatus(BaseModel):
    batch_id: str = Field(..., **_ID)
    created_at: datetime
    label: str | None = None
    submitted_by: str | None = Field(None, description="The principal that submitted it (null: before teams)")
    accounts: list[str] | None = Field(None, description="The accounts its items act in")
    state: Literal["running", "finished"] = Field(..., description="`finished` once every item is terminal")
    total: int
    counts: dict[ItemState, int] = Field(..., description="Number of items in each state (every state listed)")
    done: bool = Field(..., description="True once every item is in a terminal state")
    finished_at: datetime | None = Field(
        None, description="When it finished: its last item ended (null while it runs; a retry clears it)"
    )
    selection: SelectionOut | None = Field(None, description="A batch that selects images by filter")
    lines: list[LineOut] | None = Field(
        None,
        description="Per account and mode where the batch has items waiting in line for a slot: how many, what "
        "holds them and the next step. Only `GET /v1/batches/{batch_id}` fills it (null in lists; empty when "
        "nothing waits)",
    )

    @classmethod
    def of(cls, summary: BatchSummary, lines: list[tuple[PoolStatus, int]] | None = None) -> BatchStatus:
        progress = summary.selection
        return cls(
            batch_id=summary.batch_id,
            created_at=_utc(summary.created_at),
            label=summary.label,
            submitted_by=None if summary.owner is None else summary.owner.principal,
            accounts=None if summary.owner is None else list(summary.owner.accounts),
            state=summary.state,
            total=summary.total,
            counts=summary.counts,
            done=summary.done,
            finished_at=None if summary.finished_at is None else _utc(summary.finished_at),
            selection=None
            if progress is None
            else SelectionOut(
                state=progress.state,  # type: ignore[arg-type]
                listed=progress.listed,
                matched=progress.matched,
                created=progress.created,
                message=progress.message,
            ),
            lines=None if lines is None else [LineOut.of(status, items) for status, items in lines],
        )


class BatchesPage(BaseModel):
    batches: list[BatchStatus] = Field(..., description="Newest first")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last page")


class TransitionOut(BaseModel):
    state: ItemState
    at: datetime
    reason: ReasonCode | None = None
    message: str | None = None

    @classmethod
    def of(cls, t: Transition) -> TransitionOut:
        return cls(state=t.state, at=_utc(t.at), reason=t.reason, message=t.message)


class TagsOut(BaseModel):
    status: Status = Field(..., description="pending, applied (IMS holds every tag) or failed")
    wanted: dict[str, str] = Field(..., description="The item's tags, plus provenance tags when on")
    applied: dict[str, str] = Field(..., description="Those IMS holds on the copy (read back after tagging)")
    not_applied: dict[str, str]
    reason: ReasonCode | None = None
    message: str | None = None

    @classmethod
    def of(cls, r: TagsResult) -> TagsOut:
        return cls(**r.model_dump(), not_applied=r.not_applied)


class MemberOut(BaseModel):
    project_id: str
    status: str = Field(..., description="IMS's status: pending until the project accepts, then accepted or rejected")


class ShareOut(BaseModel):
    status: Status = Field(..., description="pending, applied (every project is a member) or failed")
    wanted: list[str] = Field(..., description="The projects asked for (share_with)")
    job_id: str | None = Field(None, description="IMS's member job (imsAddImageMembersJob)")
    members: list[MemberOut] = Field(..., description="The members IMS lists, with their status")
    not_shared: list[str]
    reason: ReasonCode | None = None
    message: str | None = None

    @classmethod
    def of(cls, r: ShareResult) -> ShareOut:
        members = [MemberOut(**m.model_dump()) for m in r.members]
        return cls(**r.model_dump(exclude={"members"}), members=members, not_shared=r.not_shared)


class DistributeOut(BaseModel):
    status: Status = Field(..., description="pending, applied (every receiver has its copy) or failed")
    receivers: list[ReceiverVerdict] = Field(
        ...,
        description="One verdict per receiver: its account, region and project, its receiver item (an item of the "
        "batch) and that item's state, new image ID, key and tags, or reason and message",
    )
    withdraw: bool = Field(..., description="Whether the share is to be withdrawn once every receiver has its copy")
    withdrawn: bool
    reason: ReasonCode | None = None
    message: str | None = None

    @classmethod
    def of(cls, r: DistributeResult) -> DistributeOut:
        return cls(**r.model_dump(exclude={"withdraw_job_id"}))


class FollowupsOut(BaseModel):
    """What was done to the copy once it was active; null where nothing was asked."""

    tags: TagsOut | None = None
    share: ShareOut | None = None
    distribute: DistributeOut | None = None

    @classmethod
    def of(cls, f: Followups | None) -> FollowupsOut | None:
        if f is None:
            return None
        return cls(
            tags=TagsOut.of(f.tags) if f.tags else None,
            share=ShareOut.of(f.share) if f.share else None,
            distribute=DistributeOut.of(f.distribute) if f.distribute else None,
        )


class ReplicationOut(BaseModel):
    """One item: what was asked, where it stands, and (when done) the new image or why not."""

    item_id: str = Field(..., **_ID)
    batch_id: str = Field(..., **_ID)
    account: str
    image_id: str = Field(..., examples=[_IMAGE])
    source_name: str | None = Field(None, description="The source image's name, once validation read it")
    line: int | None = Field(None, description="Its line in the submitter's manifest, when the submitter gave it")
    state: ItemState
    reason: ReasonCode | None = Field(
        None,
        description="Stable reason code of a refusal, failure or cancellation; on a succeeded item, what of its "
        "follow-ups did not apply (TAGS_NOT_APPLIED, NOT_SHARED, NOT_DISTRIBUTED)",
    )
    message: str | None = Field(None, description="Human explanation that goes with the reason")
    next_step: str | None = Field(
        None, description="What to do about the reason, once the item has ended without everything it asked for"
    )
    new_image_id: str | None = Field(None, description="ID of the copy, once the replication succeeded")
    progress_percent: float | None = Field(None, ge=0, le=100, description="IMS job progress, 0-100")
    job_id: str | None = Field(None, description="IMS copy job ID")
    job_started_at: datetime | None = Field(None, description="When IMS accepted the copy job")
    name: str | None = Field(None, description="Name asked for (null: the default)")
    target_name: str | None = Field(None, description="Name the copy gets, once resolved by validation")
    kms_key: str | None = None
    mode: str = Field(..., description="in-region or cross-region")
    target_region: str | None = Field(None, description="Destination region of a cross-region copy")
    target_project: str | None = Field(None, description="Destination project name asked for (null: the default)")
    target_project_id: str | None = Field(None, description="Destination project ID, once resolved by validation")
    agency: str | None = Field(None, description="Agency of the cross-region copy, once resolved by validation")
    share_with: list[str] | None = None
    distribute: list[Receiver] | None = Field(None, description="The receivers asked for (docs/architecture.md)")
    withdraw_share: bool | None = None
    parent_id: str | None = Field(
        None, description="A receiver item: the item whose shared copy it copies into its account (its distribution)"
    )
    tags: dict[str, str] | None = None
    followups: FollowupsOut | None = Field(
        None, description="Tags and sharing of the copy, from the moment it is active (state finishing)"
    )
    attempt: int = Field(..., description="1, plus one per retry")
    blocked_by: BlockedBy | None = Field(None, description=f"Why a waiting item has no slot yet: {_BLOCKED_BY}")
    blocked_hint: str | None = Field(None, description=_HINT)
    created_at: datetime
    updated_at: datetime
    history: list[TransitionOut] | None = Field(
        None, description="Every state the item entered, oldest first (in a batch's listing only with history=true)"
    )

    @classmethod
    def of(cls, item: ReplicationItem, wait: PoolStatus | None = None, **extra: object) -> ReplicationOut:
        """``wait``: the pool a waiting item is in line for (``ReplicationService.waits``)."""
        # The store keeps IMS's fraction (process_percent 0.24 means 24 %).
        progress = None if item.progress is None else round(min(max(item.progress, 0.0), 1.0) * 100, 1)
        return cls(
            item_id=item.id,
            batch_id=item.batch_id,
            account=item.account,
            image_id=item.image_id,
            source_name=item.source_name,
            line=item.line,
            state=item.state,
            reason=item.reason,
            message=item.message,
            next_step=next_step(item.reason) if item.reason and item.terminal else None,
            new_image_id=item.new_image_id,
            progress_percent=progress,
            job_id=item.job_id,
            job_started_at=None if item.job_started_at is None else _utc(item.job_started_at),
            name=item.name,
            target_name=item.target_name,
            kms_key=item.kms_key,
            mode=item.mode,
            target_region=item.target_region,
            target_project=item.target_project,
            target_project_id=item.target_project_id,
            agency=item.agency_name or item.agency,
            share_with=item.share_with,
            distribute=item.distribute,
            withdraw_share=item.withdraw_share,
            parent_id=item.parent_id,
            tags=item.tags,
            followups=FollowupsOut.of(item.followups),
            attempt=item.attempt,
            created_at=_utc(item.created_at),
            updated_at=_utc(item.updated_at),
            **_wait(wait),
            **extra,
        )


class ReplicationDetail(ReplicationOut):
    history: list[TransitionOut] = Field(..., description="Every state the item entered, oldest first")


class ItemsPage(BaseModel):
    batch_id: str = Field(..., **_ID)
    items: list[ReplicationOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next page; null on the last page")


class CancelOutcome(BaseModel):
    cancelled: int = Field(..., description="Items that had not reached IMS and are now cancelled")
    already_terminal: int = Field(..., description="Items that had already finished (any terminal state)")
    not_cancellable_running: int = Field(..., description="Items whose IMS copy job is submitted or running")
    message: str


class RetryOutcome(BaseModel):
    retried: int = Field(..., description="Failed items put back to `accepted` as a new attempt")
    resumed: int = Field(0, description="Cancelled items put back to `accepted` (only with `?cancelled=true`)")


class Health(BaseModel):
    status: str = Field(..., examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(..., examples=["ready"])
    workers: int = Field(..., description="Workers with a heartbeat within worker_seen_seconds")
    beats: int = Field(..., description="Beats whose scheduler ticked within worker_seen_seconds")


# Accounts ------------------------------------------------------------------------------------------------------
class CredentialsOut(BaseModel):
    state: str = Field(..., description="ok, refused, unreachable, or unchecked (POST /v1/accounts/check)")
    checked_at: datetime | None = None
    message: str | None = Field(None, description="What the check met, when it was not ok")


class SlotsOut(BaseModel):
    in_use: int = Field(..., description="Slots held by this system's items")
    limit: int = Field(..., description="Concurrent replications IMS allows (configured slot_limit)")
    taken_by_others: int = Field(..., description="Slots IMS says copies made elsewhere hold (probed back)")


class QuotaOut(BaseModel):
    used: int | None = Field(None, description="Private images IMS counts; null before the quota was read")
    limit: int | None = None
    headroom: int | None = Field(None, description="Copies that fit now (pending copies counted)")
    checked_at: datetime | None = None


class OutageOut(BaseModel):
    state: str = Field(..., description="closed (requests go) or open (an outage: only probes go)")
    failures: int = Field(..., description="Consecutive transient failures seen")
    next_probe_at: datetime | None = None
    outage_seconds: float = Field(..., description="Seconds the account has spent in outages")


class AccountOut(BaseModel):
    name: str
    mode: str = Field(..., description="in-region or cross-region: IMS counts the two kinds of copy apart")
    region: str
    project_id: str
    credentials: CredentialsOut
    quota: QuotaOut
    slots: SlotsOut
    outage: OutageOut
    waiting: int = Field(..., description="Items in line for a slot")
    blocked_by: BlockedBy | None = Field(None, description=f"What holds the line (null: nobody waits): {_BLOCKED_BY}")
    blocked_hint: str | None = Field(None, description=_HINT)
    drain_seconds: float | None = Field(
        None, description="Forecast to copy every waiting item at the current slots; null: see drain_unknown"
    )
    drain_unknown: Literal["blocked", "no_history"] | None = Field(
        None,
        description="Why drain_seconds is null: blocked (the line waits on an outage, the quota or slots held "
        "elsewhere, which no copy's end moves: no time can be forecast), no_history (no copy has finished yet)",
    )

    @classmethod
    def of(cls, view: AccountView) -> AccountOut:
        status, health, quota = view.status, view.status.health, view.status.quota
        check = health.check or "unchecked"
        state, _, message = check.partition(": ")
        return cls(
            name=view.name,
            mode=view.mode,
            region=view.region,
            project_id=view.project_id,
            credentials=CredentialsOut(
                state=state,
                checked_at=_utc(health.checked_at) if health.checked_at else None,
                message=message or None,
            ),
            quota=QuotaOut(
                used=quota.used if quota.quota is not None else None,
                limit=quota.quota,
                headroom=quota.headroom,
                checked_at=_utc(quota.checked_at) if quota.checked_at else None,
            ),
            slots=SlotsOut(in_use=status.in_use, limit=status.pool.limit, taken_by_others=status.taken_by_others),
            outage=OutageOut(
                state="open" if health.open else "closed",
                failures=health.failures,
                next_probe_at=_utc(health.probe_at) if health.probe_at else None,
                outage_seconds=round(health.outage_seconds, 1),
            ),
            waiting=status.queued,
            **_wait(status if status.queued else None),
            drain_seconds=None if view.drain_seconds is None else round(view.drain_seconds, 1),
            drain_unknown=view.drain_unknown,
        )


class AccountsPage(BaseModel):
    accounts: list[AccountOut]


class CheckRequested(BaseModel):
    accounts: list[str] = Field(..., description="Accounts whose credentials a worker now checks")


class AuditRecordOut(BaseModel):
    """One call in the audit trail (docs/teams.md)."""

    id: str = Field(..., description="The record's ID in the trail (newest is greatest)", examples=["1767225600000-0"])
    time: datetime = Field(..., description="When the call's outcome was known")
    request_id: str = Field(..., description="The call's `X-Request-ID` (the client's, or one the API made)")
    principal: str | None
    source: str | None = Field(..., description="The client's address")
    method: str
    path: str
    action: str = Field(..., examples=["batch.submit"])
    outcome: str = Field(..., examples=["ok", "forbidden"])
    status: int = Field(..., description="The HTTP status answered")
    batch_id: str | None
    plan_id: str | None
    policy_id: str | None = Field(None, description="The standing policy the call made or acted on")
    accounts: list[str] = Field(..., description="The accounts the call acted in (or asked to)")
    items: int | None = Field(..., description="Items stored or changed (cancelled, retried, deleted)")
    share_targets: list[str] = Field(
        ..., description="Project IDs the items are to be shared with (their union, distributions' receivers included)"
    )
    unencrypted_copies: int | None = Field(..., description="Items asking for a copy without a KMS key (`kms_key`)")
    selector: Literal["encrypted", "unencrypted"] | None = Field(
        ..., description="A selector's copies, whose number is known only as it lists images; null without one"
    )
    detail: str | None = Field(..., description="Why a refusal for scope or role was made")


class AuditPageOut(BaseModel):
    records: list[AuditRecordOut] = Field(..., description="Newest first")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next (older) page; null on the last")
