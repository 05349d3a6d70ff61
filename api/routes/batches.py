"""Batches: submit, list, status, items, cancel, retry, delete."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import REPLAYED, IdempotencyKey, JsonBody, PrincipalDep, ServiceDep
from api.openapi import LOCATION, errors_doc, json_body_doc
from api.schemas import (
    BatchAcceptedWithQuota,
    BatchesPage,
    BatchRequest,
    BatchStatus,
    CancelOutcome,
    ItemsPage,
    PlanAccepted,
    QuotaNoteOut,
    ReplicationOut,
    RetryOutcome,
    TransitionOut,
)
from api.service import RUNNING_NOT_CANCELLABLE, QuotaNote
from worker.data import StoredPlan
from worker.domain.naming import LABEL_RE
from worker.domain.states import ItemState

router = APIRouter(prefix="/batches", tags=["batches"])

BatchId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Batch ID (32 lowercase hex characters)")]
_BATCH_CURSOR = r"^[0-9]{1,16}(\.[0-9]{1,17})?:[0-9a-f]{32}$"  # created_at (exactly as stored) and batch ID
_NOT_FOUND = errors_doc(e404="No such batch")

_EXAMPLES = {
    "re-key": {
        "summary": "Re-key two images with the default KMS key",
        "value": {
            "items": [
                {"image_id": "b6f1a7de-37d4-4f2c-9a0e-3c7e1d2f5a81"},
                {"image_id": "0c9e2f4a-1b3d-4e5f-8a7b-6c5d4e3f2a1b", "name": "web-rekeyed"},
            ],
            "defaults": {"kms_key": "ims/default"},
        },
    },
    "select": {
        "summary": "Re-key every image encrypted with old-key",
        "value": {"selector": {"kms_key": "old-key"}, "template": {"kms_key": "new-key", "name": "{name}-rekeyed"}},
    },
    "decrypt": {
        "summary": "An unencrypted copy (no kms_key) with a description",
        "value": {"items": [{"image_id": "b6f1a7de-37d4-4f2c-9a0e-3c7e1d2f5a81", "description": "for sharing"}]},
    },
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a batch of images to replicate",
    description=(
        "Checks every item's syntax (IDs, IMS name and description rules, key reference, account), and a "
        "selector's filters and its template (a name pattern that cannot give valid IMS names is refused). Any "
        "problem refuses the whole batch with a 422 listing every one (index, field and rule); nothing is stored. "
        "Otherwise the batch is stored in one Redis transaction and handed to the workers; a selector's images "
        "are listed by a worker, a page at a time, and become items as the pages arrive. With `plan: true` nothing "
        "is copied: the answer names a plan (`Location: /v1/plans/{plan_id}`) the workers work out. A batch whose "
        "in-region items exceed an account's last known image quota headroom says so in `warnings`."
    ),
    openapi_extra=json_body_doc(BatchRequest, _EXAMPLES),
    responses={
        202: {"description": "Stored (`Location`: the batch), or a plan (`Location`: the plan)", "headers": LOCATION},
        **errors_doc(
            e409="Idempotency-Key already used with another request",
            e422="Bad items or a malformed body; nothing stored",
            e413="Body over max_request_bytes",
        ),
    },
)
def submit_batch(
    body: JsonBody, service: ServiceDep, who: PrincipalDep, response: Response, idempotency_key: IdempotencyKey = None
) -> BatchAcceptedWithQuota | PlanAccepted:
    stored = service.submit_batch(who, body, idempotency_key)
    if stored.earlier is not None:
        response.headers[REPLAYED] = "true"
    if isinstance(stored, StoredPlan):
        response.headers["Location"] = f"/v1/plans/{stored.plan_id}"
        return PlanAccepted(plan_id=stored.plan_id, accepted=stored.asked, selecting=stored.selecting)
    response.headers["Location"] = f"/v1/batches/{stored.batch_id}"
    notes = service.quota_notes(batch_id=stored.batch_id)
    return BatchAcceptedWithQuota(
        batch_id=stored.batch_id,
        accepted=len(stored.item_ids),
        item_ids=stored.item_ids,
        selecting=stored.selecting,
        quota=[quota_note(note) for note in notes],
        warnings=[_over_quota(note) for note in notes if note.over_quota],
    )


def quota_note(note: QuotaNote) -> QuotaNoteOut:
    reading = note.reading
    return QuotaNoteOut(
        account=note.account,
        items=note.items,
        waiting=note.waiting,
        quota=reading.quota,
        used=reading.used,
        headroom=reading.headroom,
        read_at=datetime.fromtimestamp(reading.checked_at or 0.0, tz=timezone.utc),
        over_quota=note.over_quota,
    )


def _over_quota(note: QuotaNote) -> str:
    read = datetime.fromtimestamp(note.reading.checked_at or 0.0, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"account {note.account}: {note.items} copies asked and {note.waiting} already waiting, but its image quota "
        f"has room for {note.reading.headroom} (read {read}): {note.over_quota} will wait for quota "
        "(delete images or raise the quota)"
    )


@router.get("", summary="Batches, newest first, a page at a time; by state and label")
def list_batches(
    service: ServiceDep,
    who: PrincipalDep,
    state: Annotated[Literal["running", "finished"] | None, Query(description="Only batches in this state")] = None,
    label: Annotated[str | None, Query(pattern=LABEL_RE.pattern, description="Only batches with this label")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Batches per page")] = 50,
    cursor: Annotated[str | None, Query(pattern=_BATCH_CURSOR, description="A page's `next_cursor`")] = None,
) -> BatchesPage:
    page = service.batches(who, limit=limit, cursor=cursor, label=label, state=state)
    return BatchesPage(batches=[BatchStatus.of(b) for b in page.batches], next_cursor=page.next_cursor)


@router.get(
    "/{batch_id}",
    summary="Progress of a batch: counts by state, and what its waiting items wait for",
    responses=_NOT_FOUND,
)
def get_batch(batch_id: BatchId, service: ServiceDep, who: PrincipalDep) -> BatchStatus:
    summary = service.batch(who, batch_id)
    return BatchStatus.of(summary, lines=[] if summary.done else service.lines(batch_id))


@router.get("/{batch_id}/items", summary="A page of a batch's items, optionally in one state", responses=_NOT_FOUND)
def list_items(
    batch_id: BatchId,
    service: ServiceDep,
    who: PrincipalDep,
    state: Annotated[ItemState | None, Query(description="Only items in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 100,
    # Bounded so that no client value can reach Redis as an out-of-range index.
    cursor: Annotated[int, Query(ge=0, le=10_000_000, description="`next_cursor` of the previous page")] = 0,
    history: Annotated[
        bool, Query(description="Also each item's history (one more Redis round trip per page, not per item)")
    ] = False,
) -> ItemsPage:
    items, next_cursor = service.batch_items(who, batch_id, state, limit, cursor)
    waits = service.waits(items)
    logs = service.histories(items) if history else {}
    shown = {item_id: [TransitionOut.of(t) for t in log] for item_id, log in logs.items()}
    page = [ReplicationOut.of(i, wait=waits.get(i.id), history=shown.get(i.id)) for i in items]
    return ItemsPage(batch_id=batch_id, items=page, next_cursor=next_cursor)


@router.post(
    "/{batch_id}/cancel",
    summary="Cancel the items that have not reached IMS yet",
    description="Items in accepted, validating or waiting are cancelled. " + RUNNING_NOT_CANCELLABLE + ".",
    responses=_NOT_FOUND,
)
def cancel_batch(batch_id: BatchId, service: ServiceDep, who: PrincipalDep) -> CancelOutcome:
    counts = service.cancel(who, batch_id)
    # Every item is counted once: cancelled, ended before the cancel came, or running on at IMS.
    message = f"{counts.cancelled} cancelled"
    if counts.already_terminal:
        message += f"; {counts.already_terminal} had already ended"
    if counts.not_cancellable_running:
        message += f"; {counts.not_cancellable_running} not cancelled: {RUNNING_NOT_CANCELLABLE}"
    return CancelOutcome(
        cancelled=counts.cancelled,
        already_terminal=counts.already_terminal,
        not_cancellable_running=counts.not_cancellable_running,
        message=message,
    )


@router.post(
    "/{batch_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Retry the batch's failed items (and, asked, resume its cancelled ones) as a new attempt",
    responses={202: {"description": "Retried; `Location` is the batch", "headers": LOCATION}, **_NOT_FOUND},
)
def retry_batch(
    batch_id: BatchId,
    service: ServiceDep,
    who: PrincipalDep,
    response: Response,
    cancelled: Annotated[
        bool, Query(description="Also resume the cancelled items: each goes through validation again")
    ] = False,
) -> RetryOutcome:
    counts = service.retry(who, batch_id, cancelled=cancelled)
    response.headers["Location"] = f"/v1/batches/{batch_id}"
    return RetryOutcome(retried=counts.retried, resumed=counts.resumed)


@router.delete(
    "/{batch_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a finished batch and its items",
    description=(
        "Only a finished batch (every item terminal) is deleted, with all its items and their history; a batch "
        "with any item still under way is refused with a 409 and nothing is deleted. Finished batches are also "
        "deleted by themselves IMSREP_RETENTION_DAYS (default 30) after their last item ended."
    ),
    responses={**_NOT_FOUND, **errors_doc(e409="Some items have not ended; nothing deleted")},
)
def delete_batch(batch_id: BatchId, service: ServiceDep, who: PrincipalDep) -> Response:
    service.delete(who, batch_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
