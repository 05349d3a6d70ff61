"""Plans (dry runs): what a batch would do, item by item, with its quota and its duration forecast."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import PrincipalDep, ServiceDep
from api.openapi import errors_doc
from api.schemas import PlanOut, VerdictOut

router = APIRouter(prefix="/plans", tags=["plans"])

PlanId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Plan ID (32 lowercase hex characters)")]


@router.get(
    "/{plan_id}",
    summary="A plan: its summary once done, and a page of its verdicts",
    description=(
        "Made by `POST /v1/batches` with `plan: true`. `state` is `planning` while the workers judge the items "
        "(the verdicts so far are listed), `done` with the summary, or `failed` with the reason. Plans are kept "
        "IMSREP_PLAN_SECONDS (default a day)."
    ),
    responses=errors_doc(e404="No such plan (or it has expired)"),
)
def get_plan(
    plan_id: PlanId,
    service: ServiceDep,
    who: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Verdicts per page")] = 100,
    cursor: Annotated[int, Query(ge=0, le=10_000_000, description="`next_cursor` of the previous page")] = 0,
) -> PlanOut:
    record = service.plan(who, plan_id)
    verdicts, next_cursor = service.plan_verdicts(who, plan_id, cursor, limit)
    return PlanOut(
        plan_id=plan_id,
        created_at=datetime.fromtimestamp(record.created_at, tz=timezone.utc),
        state=record.state,  # type: ignore[arg-type]
        label=record.label,
        message=record.message,
        listed=record.listed,
        summary=record.summary,
        items=[VerdictOut.model_validate(v) for v in verdicts],
        next_cursor=next_cursor,
    )
