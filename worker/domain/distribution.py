"""A distribution: an item's copy handed to receiving projects, each of which ends with a private copy of its own.

An item's ``distribute`` lists its receivers, each an account of this deployment (the receiving project), the region
it is in, the key its own copy is encrypted with and that copy's tags. The source copy is made in the item's account
as any copy is; a shared image must be unencrypted (IMS refuses to share an encrypted one, IMG.0098), so it takes no
``kms_key``. Each receiver then accepts the share and copies the image into a private one under its own key
(docs/ims-api.md §9; docs/architecture.md "A distribution"). The rules here are syntax and the rules against the
configured accounts and the source account's guardrails, judged by the API (``api.validation``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from config.settings import ACCOUNT_NAME, AccountSettings
from worker.domain.guardrails import region_breach, share_breach
from worker.domain.naming import KeyRef, RegionId, Tags

MAX_MEMBERS = 128  # member projects of one (system- or data-disk) image, docs/ims-api.md §9


class Receiver(BaseModel):
    """One receiving project: a configured account, and what its own copy is made with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(..., pattern=ACCOUNT_NAME.pattern, description="Configured account of the receiving project")
    region: RegionId | None = Field(
        None,
        description="The receiver's region, which is its account's (a project lives in one region); default the "
        "source account's",
    )
    key: KeyRef | None = Field(
        None, description="KMS key ID or alias (the receiver's own) its copy is encrypted with; omit for unencrypted"
    )
    tags: Tags | None = Field(None, description="Tags for the receiver's copy (IMS's limits, as an item's)")


def receivers_problem(receivers: Sequence[Receiver]) -> str | None:
    """Why a ``distribute`` list is wrong on its own (its count, a receiver twice), or None."""
    if not 1 <= len(receivers) <= MAX_MEMBERS:
        return f"must list 1 to {MAX_MEMBERS} receivers, IMS's member limit (got {len(receivers)})"
    accounts = [r.account for r in receivers]
    if twice := next((a for i, a in enumerate(accounts) if a in accounts[:i]), None):
        return f"must not list a receiver twice (account {twice})"
    return None


def distribution_problems(
    receivers: Sequence[Receiver],
    source: str,
    accounts: Mapping[str, AccountSettings],
    *,
    share_with: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """(field, rule) pairs: each receiver against the configured ``accounts`` and the guardrails of ``source``, the
    account that owns the shared copy (its ``share_projects`` and ``copy_regions``)."""
    owner = accounts[source]
    found: list[tuple[str, str]] = []
    for i, receiver in enumerate(receivers):
        field = f"distribute.{i}"
        account = accounts.get(receiver.account)
        if account is None:
            continue  # the caller names the configured accounts (as for an item's own account)
        region = receiver.region or owner.region
        if region != account.region:
            rule = f"account {receiver.account}'s project is in region {account.region}, not {region}"
            found.append((f"{field}.region", rule))
            continue
        if receiver.account == source or account.project_id == owner.project_id:
            found.append((f"{field}.account", f"is the source account {source}, which owns the shared copy"))
            continue
        if share_with and account.project_id in share_with:
            found.append((f"{field}.account", f"its project {account.project_id} is in share_with too; give it once"))
        for breach in (share_breach(source, owner, [account.project_id]), region_breach(source, owner, region)):
            if breach is not None:
                found.append((field, breach.rule))
    if share_with and len(share_with) + len(receivers) > MAX_MEMBERS:
        rule = f"with share_with, at most {MAX_MEMBERS} member projects in all (IMS's member limit)"
        found.append(("distribute", rule))
    return found
