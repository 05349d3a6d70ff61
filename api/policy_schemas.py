"""The policy routes' bodies as the OpenAPI document shows them (``api.schemas`` holds the batches')."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.data import BatchSummary, Outcome, PolicyStatus, Run
from worker.data.policy_status import run_lag
from worker.domain.policy import Overlap, Schedule
from worker.domain.retirement import Retention, Verdict
from worker.domain.selector import Selector, Template
from worker.domain.states import ItemState

_ID = {"pattern": r"^[0-9a-f]{32}$", "examples": ["5d1e0c7a9b3f4e2d8c6a1b0f9e8d7c6b"]}


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


class PolicyRequest(BaseModel):
    """A standing policy: a campaign's selector and template, run on a schedule. ``PATCH`` takes any of the fields
    and checks the whole definition again."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="1-64 letters, digits, '.', '_', ':' or '-': each run's batch label")
    selector: Selector = Field(..., description="Which images each run selects (as a campaign's; with `account`)")
    template: Template = Field(
        default_factory=Template,
        description="What each copy is (as a campaign's template); at most 5 tags, the copies also get "
        "imsrep_policy, imsrep_source, imsrep_lineage, imsrep_source_created (and imsrep_batch with provenance "
        "tags on). With `distribute` (and `withdraw_share`), each copy is handed to those receivers as a batch "
        "item's is, by the same rules (each receiver's account must be in the caller's scope: a 403 names it)",
    )
    schedule: Schedule
    overlap: Overlap = Field(
        Overlap.SKIP, description="While the previous run's batch has not finished: skip the run, or wait for it"
    )
    retention: Retention | None = Field(
        None,
        description="Which of its copies each run keeps (`keep_last` per lineage and/or `keep_for` seconds) and "
        "what it does with the others (`action`: `report` or `delete`); none: every copy is kept. Only the "
        "policy's own copies (its tag, in its destination project) are ever retired: with a template that "
        "distributes, the receivers' private copies are theirs, never retired, and the shared copy is "
        "`kept_shared` while receivers have accepted it, unless `withdraw_share` or `delete_shared`",
    )
    paused: bool = Field(False, description="A paused policy starts no run")


class RetirementOut(BaseModel):
    """A retention verdict on one of the policy's copies (README "Policies", Retention)."""

    image_id: str = Field(..., description="The copy")
    source: str = Field(..., description="The image it was copied from")
    lineage: str
    verdict: Verdict = Field(
        ..., description="`retirable` (action report), `retired`, `kept_shared` (a member accepted it), `failed`"
    )
    reason: str | None = Field(None, description="Why a deletion failed (a reason code)")
    message: str | None = None


class RunOut(BaseModel):
    run: int = Field(..., description="The run's number, from 1")
    started_at: datetime
    state: Literal["skipped", "running", "finished", "deleted"] = Field(
        ..., description="`deleted`: its batch has been deleted (or expired) since"
    )
    batch_id: str | None
    message: str | None = Field(None, description="Why it was skipped")
    total: int = Field(0, description="Items its selection made")
    counts: dict[ItemState, int] = Field(default_factory=dict, description="Its items by state")
    listed: int = Field(0, description="Images its selection listed")
    already_copied: int = Field(0, description="Selected sources left out: the policy's copies of them exist")
    copies_made: int = Field(
        0,
        description="Copies its items made in the policy's account (items succeeded; with a distribution, its "
        "copies carried into the receivers' other regions too; the receivers' own copies are `receiver_copies`)",
    )
    receiver_copies: int = Field(
        0, description="Private copies its distributions' receivers made, each in its own project under its key"
    )
    retired: int = Field(0, description="Copies its retention deleted")
    retirements: list[RetirementOut] = Field(
        default_factory=list, description="Its retention's verdict on each copy the rule did not keep"
    )
    lag_seconds: float | None = Field(
        None, description="Age of the oldest image it selected that had no copy, at its start (0: none)"
    )

    @classmethod
    def of(cls, run: Run, batch: BatchSummary | None, retirements: list[dict[str, Any]]) -> RunOut:
        common = {
            "run": run.run,
            "started_at": _utc(run.at),
            "batch_id": run.batch_id,
            "message": run.message,
            "retired": sum(1 for j in retirements if j["verdict"] == Verdict.RETIRED.value),
            "retirements": retirements,
        }
        if run.skipped:
            return cls(state="skipped", **common)
        if batch is None:
            return cls(state="deleted", **common)
        selection = batch.selection
        return cls(
            state=batch.state,  # type: ignore[arg-type]
            total=batch.total,
            counts={state: n for state, n in batch.counts.items() if n},
            listed=selection.listed if selection else 0,
            already_copied=selection.copied if selection else 0,
            copies_made=batch.copies_made,
            receiver_copies=batch.received,
            lag_seconds=run_lag(batch),
            **common,
        )


class PolicyOut(BaseModel):
    policy_id: str = Field(..., **_ID)
    name: str
    selector: dict[str, Any]
    template: dict[str, Any]
    schedule: Schedule
    overlap: Overlap
    retention: Retention | None
    paused: bool
    account: str = Field(..., description="Whose images it selects (the selector's account, or the default)")
    submitted_by: str = Field(..., description="The principal that created it: its runs' batches are its")
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None = Field(..., description="When its next run is due; null while paused")
    runs: int = Field(..., description="Runs so far (skipped ones included)")
    last_batch_id: str | None = Field(..., description="The latest started run's batch")
    last_run: RunOut | None = Field(..., description="The latest run, as `GET .../runs` shows it; null before one")
    last_run_outcome: Outcome | None = Field(
        ...,
        description="`succeeded`: every item it made succeeded (or it had nothing to copy); `failed`: some source "
        "was not copied, or some receiver not given its copy (an item failed, was refused or cancelled); `running`, "
        "`skipped` (its message says why), "
        "`deleted` (its batch is gone); null before the first run",
    )
    lag_seconds: float | None = Field(
        ...,
        description="Age of the oldest image the latest started run selected that had no copy, at that run's start "
        "(0: every image it selected had one); null before a run has listed its copies",
    )
    copies_made: int = Field(..., description="Copies the policy's runs made in its account")
    receiver_copies: int = Field(
        ..., description="Private copies the receivers of its template's `distribute` made (each in its own project)"
    )
    copies_retired: int = Field(
        ...,
        description="Copies the policy's retention deleted: its own copies only, never a receiver's private copy",
    )

    @classmethod
    def of(cls, status: PolicyStatus) -> PolicyOut:
        policy, definition, last = status.policy, status.policy.definition, status.last
        return cls(
            policy_id=policy.id,
            name=definition.name,
            selector=definition.selector,
            template=definition.template,
            schedule=definition.schedule,
            overlap=definition.overlap,
            retention=definition.retention,
            paused=definition.paused,
            account=policy.account,
            submitted_by=policy.owner.principal,
            created_at=_utc(policy.created_at),
            updated_at=_utc(policy.updated_at),
            next_run_at=_utc(policy.next_run_at),
            runs=policy.runs,
            last_batch_id=policy.last_batch,
            last_run=None if last is None else RunOut.of(last, status.last_batch, status.retirements),
            last_run_outcome=status.outcome,
            lag_seconds=status.lag,
            copies_made=status.made,
            receiver_copies=status.received,
            copies_retired=status.retired,
        )


class PoliciesOut(BaseModel):
    policies: list[PolicyOut] = Field(..., description="Oldest first, those in the caller's scope")


class RunsOut(BaseModel):
    policy_id: str = Field(..., **_ID)
    runs: list[RunOut] = Field(..., description="The latest 100, newest first")


class RunRequested(BaseModel):
    policy_id: str = Field(..., **_ID)
    run: int = Field(..., description="The number the run will have (unless the overlap rule skips or delays it)")
