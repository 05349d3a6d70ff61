"""What happens to a copy after it is active: its tags, then its sharing, then its distribution ("follow-ups"), and
what each one did.

A copy with follow-ups goes ``replicating -> finishing`` when it becomes active: its IMS slot is free at once (tag
and member calls are not replication tasks), and the follow-ups run in order as steps of their own
(``worker.steps.followup``). Each ends ``applied`` or ``failed`` with a reason; then the item ends ``succeeded``
either way, because the copy exists. A failed follow-up is named by the item's reason (``TAGS_NOT_APPLIED``,
``NOT_SHARED``) and spelt out by its message and by ``followups``.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field

from worker.domain.reasons import ReasonCode
from worker.domain.retirement import PROVENANCE_BORN, PROVENANCE_LINEAGE

PROVENANCE_SOURCE = "imsrep_source"  # the source image ID
PROVENANCE_BATCH = "imsrep_batch"  # the batch ID
PROVENANCE_KEYS = (PROVENANCE_SOURCE, PROVENANCE_BATCH)
PROVENANCE_POLICY = "imsrep_policy"  # the policy whose run made the copy (its ID): what a run lists by
# Every tag a policy's copy may carry besides its own: its lineage and its source's age are for retention.
POLICY_TAGS = (PROVENANCE_POLICY, PROVENANCE_LINEAGE, PROVENANCE_BORN, *PROVENANCE_KEYS)


def policy_tags(policy_id: str, source_image_id: str, retention: dict[str, str]) -> dict[str, str]:
    """The tags by which a policy's later runs find its copy, whatever Redis has forgotten (worker.steps.provenance),
    and judge it by their retention rule (``retention``: ``worker.domain.retirement.lineage_tags``)."""
    return {PROVENANCE_POLICY: policy_id, PROVENANCE_SOURCE: source_image_id, **retention}


class Kind(str, Enum):
    # In the order they run: a distribution's receivers accept a share that exists.
    TAGS = "tags"
    SHARE = "share"
    DISTRIBUTE = "distribute"


class Status(str, Enum):
    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"


class _Result(BaseModel):
    status: Status = Status.PENDING
    reason: ReasonCode | None = None
    message: str | None = None


class TagsResult(_Result):
    """The tags asked for (the item's, plus provenance tags) and those IMS holds on the copy."""

    wanted: dict[str, str]
    applied: dict[str, str] = Field(default_factory=dict)

    @property
    def not_applied(self) -> dict[str, str]:
        return {k: v for k, v in self.wanted.items() if self.applied.get(k) != v}


class Member(BaseModel):
    project_id: str
    status: str  # IMS's member status: pending until the project accepts, then accepted or rejected


class ShareResult(_Result):
    """The projects asked for, IMS's member job, and the members as IMS lists them afterwards."""

    wanted: list[str]
    job_id: str | None = None
    members: list[Member] = Field(default_factory=list)

    @property
    def not_shared(self) -> list[str]:
        shared = {m.project_id for m in self.members}
        return [p for p in self.wanted if p not in shared]


class ReceiverVerdict(BaseModel):
    """One receiver of a distribution: where its copy is (or is to be), and its receiver item's outcome."""

    account: str
    region: str
    project_id: str | None = None  # None: its account is not configured on the workers
    item_id: str | None = None  # its receiver item, once made (worker.steps.distribute)
    via: str | None = None  # in another region: the item carrying the copy there, whose receiver item it gets
    state: str = Status.PENDING.value  # its item's state once made
    new_image_id: str | None = None
    key: str | None = None
    tags: dict[str, str] | None = None
    reason: ReasonCode | None = None
    message: str | None = None

    @property
    def has_copy(self) -> bool:
        return self.state == "succeeded" and self.new_image_id is not None


class DistributeResult(_Result):
    """The receivers, each with its verdict; ``withdraw``: remove the members once every one has its own copy."""

    receivers: list[ReceiverVerdict]
    withdraw: bool = False
    withdraw_job_id: str | None = None  # IMS's member job removing the receivers (imsDeleteImageMembersJob)
    withdrawn: bool = False

    @property
    def not_distributed(self) -> list[ReceiverVerdict]:
        return [r for r in self.receivers if not r.has_copy]


# The item's reason when a follow-up of this kind did not apply.
NOT_APPLIED = {
    Kind.TAGS: ReasonCode.TAGS_NOT_APPLIED,
    Kind.SHARE: ReasonCode.NOT_SHARED,
    Kind.DISTRIBUTE: ReasonCode.NOT_DISTRIBUTED,
}
Result = TagsResult | ShareResult | DistributeResult


class Followups(BaseModel):
    """Stored on the item (``followups``) from the moment its copy is active."""

    started_at: float
    tags: TagsResult | None = None
    share: ShareResult | None = None
    distribute: DistributeResult | None = None

    def result(self, kind: Kind) -> Result | None:
        return getattr(self, kind.value)

    def next_kind(self) -> Kind | None:
        """The first follow-up still to do, in order (tags, then sharing); None when all are done."""
        return next((k for k in Kind if (r := self.result(k)) is not None and r.status is Status.PENDING), None)

    def outcome(self) -> tuple[ReasonCode | None, str | None]:
        """The item's reason and message once all are done: None for both when everything applied."""
        failed: list[tuple[Kind, Result]] = [
            (kind, result)
            for kind in Kind
            if (result := self.result(kind)) is not None and result.status is Status.FAILED
        ]
        if not failed:
            return None, None
        parts = []
        for _, result in failed:
            if isinstance(result, TagsResult):
                what = "tags not applied: " + ", ".join(f"{k}={v}" for k, v in result.not_applied.items())
            elif isinstance(result, ShareResult):
                what = "not shared with " + ", ".join(result.not_shared)
            elif missing := result.not_distributed:
                what = "no copy of their own for " + ", ".join(r.account for r in missing)
            else:
                what = "the share not withdrawn"
            why = f"{result.reason.value}: " if result.reason else ""
            parts.append(f"{what} ({why}{result.message})")
        return NOT_APPLIED[failed[0][0]], "the copy is made; " + "; ".join(parts)


def wanted_tags(tags: dict[str, str] | None, provenance: bool, source_image_id: str, batch_id: str) -> dict[str, str]:
    """The tags a copy gets: the item's, and with provenance on, where it came from."""
    wanted = dict(tags or {})
    if provenance:
        wanted.update({PROVENANCE_SOURCE: source_image_id, PROVENANCE_BATCH: batch_id})
    return wanted
