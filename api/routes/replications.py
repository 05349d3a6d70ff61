"""Single replications: submit one image, and the full record of any item."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from api.deps import REPLAYED, IdempotencyKey, JsonBody, PrincipalDep, ServiceDep
from api.openapi import LOCATION, errors_doc, json_body_doc
from api.schemas import ReplicationAccepted, ReplicationDetail, TransitionOut
from worker.domain.spec import ItemSpec

router = APIRouter(prefix="/replications", tags=["replications"])

ItemId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Item ID (32 lowercase hex characters)")]

_EXAMPLES = {
    "encrypted": {
        "summary": "An encrypted copy under a new name",
        "value": {"image_id": "b6f1a7de-37d4-4f2c-9a0e-3c7e1d2f5a81", "name": "db-2024", "kms_key": "ims/default"},
    },
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Replicate one image (a batch of one)",
    openapi_extra=json_body_doc(ItemSpec, _EXAMPLES),
    responses={
        202: {"description": "Stored and handed to the workers; `Location` is the item", "headers": LOCATION},
        **errors_doc(
            e409="Idempotency-Key already used with another request",
            e422="Bad item or malformed body; nothing stored",
            e413="Body over max_request_bytes",
        ),
    },
)
def submit_replication(
    body: JsonBody, service: ServiceDep, who: PrincipalDep, response: Response, idempotency_key: IdempotencyKey = None
) -> ReplicationAccepted:
    stored = service.submit_one(who, body, idempotency_key)
    if stored.earlier is not None:
        response.headers[REPLAYED] = "true"
    response.headers["Location"] = f"/v1/replications/{stored.item_ids[0]}"
    return ReplicationAccepted(batch_id=stored.batch_id, item_id=stored.item_ids[0])


@router.get(
    "/{item_id}",
    summary="One item: state, reason, new image ID, progress and history",
    responses=errors_doc(e404="No such item"),
)
def get_replication(item_id: ItemId, service: ServiceDep, who: PrincipalDep) -> ReplicationDetail:
    item, history = service.replication(who, item_id)
    history_out = [TransitionOut.of(t) for t in history]
    return ReplicationDetail.of(item, wait=service.waits([item]).get(item.id), history=history_out)
