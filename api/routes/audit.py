"""The audit trail: who changed what, and who was refused (admins only)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from api.audit import ACTIONS, OUTCOMES
from api.auditor import Auditor, AuditQuery
from api.deps import PrincipalDep
from api.schemas import AuditPageOut, AuditRecordOut
from config.settings import ACCOUNT_NAME

router = APIRouter(prefix="/audit", tags=["audit"])

# Literal types from the lists, so a bad value is a 422 that lists the known ones.
Action = Literal[tuple(ACTIONS)]  # type: ignore[valid-type]
Outcome = Literal[tuple(OUTCOMES)]  # type: ignore[valid-type]


def _auditor(request: Request) -> Auditor:
    return request.app.state.auditor


@router.get(
    "",
    summary="The audit trail, newest first: state-changing calls and refusals for scope or role",
    description=(
        "Every batch or plan submitted, replication, cancel, retry, delete and account check, whatever its outcome, "
        "and every call refused for its principal's role (`forbidden`) or scope (`not_found`: answered as if "
        "missing). Each record names the principal, its address, the request's `X-Request-ID`, the batch or plan, "
        "accounts, items, share targets and how many copies are unencrypted. Kept IMSREP_AUDIT_RETENTION_DAYS "
        "(default 365), whatever becomes of the batches. Admins only. A page looks at 10,000 records at most: with "
        "filters that match few, it may be short and still have a `next_cursor`."
    ),
)
def read_audit(
    request: Request,
    who: PrincipalDep,
    principal: Annotated[str | None, Query(pattern=ACCOUNT_NAME.pattern, description="Only this principal's")] = None,
    action: Annotated[Action | None, Query(description="Only this action")] = None,
    batch: Annotated[
        str | None, Query(pattern=r"^[0-9a-f]{32}$", description="Only this batch's, plan's or policy's")
    ] = None,
    outcome: Annotated[Outcome | None, Query(description="Only calls that ended so")] = None,
    since: Annotated[datetime | None, Query(description="Not before this time (ISO 8601; UTC if no zone)")] = None,
    until: Annotated[datetime | None, Query(description="Not after this time (ISO 8601; UTC if no zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Records per page")] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$", description="A page's `next_cursor`")
    ] = None,
) -> AuditPageOut:
    query = AuditQuery(limit, cursor, principal, action, batch, outcome, since, until)
    page = _auditor(request).read(who, query)
    records = [AuditRecordOut.model_validate(asdict(record)) for record in page.records]
    return AuditPageOut(records=records, next_cursor=page.next_cursor)
