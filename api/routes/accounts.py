"""Accounts: what each one's slots, quota, outage and line look like, and a check of its credentials."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.accounts import AccountService
from api.deps import PrincipalDep
from api.openapi import LOCATION, errors_doc
from api.schemas import AccountOut, AccountsPage, CheckRequested

router = APIRouter(prefix="/accounts", tags=["accounts"])


def _service(request: Request) -> AccountService:
    return request.app.state.accounts


@router.get("", summary="Every configured account: credentials, image quota, slots, outage, waiting items")
def list_accounts(request: Request, who: PrincipalDep) -> AccountsPage:
    return AccountsPage(accounts=[AccountOut.of(view) for view in _service(request).accounts(who)])


@router.post(
    "/check",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Check credentials: one signed read call per account, made by a worker",
    description=(
        "A worker makes one signed read (the account's image quota) and records what it met; the result shows "
        "in `GET /v1/accounts` (`credentials.checked_at`). An account whose credentials were refused in the last "
        "five minutes is not asked again, so IAM's lock-out after repeated refusals is never fed."
    ),
    responses={
        202: {"description": "Asked; `Location` is the accounts list", "headers": LOCATION},
        **errors_doc(e404="No such account"),
    },
)
def check_accounts(
    request: Request,
    who: PrincipalDep,
    response: Response,
    account: Annotated[str | None, Query(description="Only this account")] = None,
) -> CheckRequested:
    response.headers["Location"] = "/v1/accounts"
    return CheckRequested(accounts=_service(request).request_check(who, account))
