"""Standing replication policies: a campaign's selector and template, run on a schedule (the README's Policies).

A policy's runs are selector batches. What it already copied is read from the cloud, by the provenance tags its
copies carry (``imsrep_policy`` and ``imsrep_source``, ``worker.domain.followups.policy_tags``), so that a run
copies each source once however much of Redis is lost. Here: the schedule (an interval or a 5-field cron
expression, parsed by Celery's own ``crontab``), what a run does while the previous one is still running
(``Overlap``), and a stored policy as the API and the runs read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from celery.schedules import crontab
from celery.utils.time import ffwd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from worker.domain.followups import POLICY_TAGS
from worker.domain.naming import TAGS_MAX
from worker.domain.ownership import Owner
from worker.domain.retirement import Retention
from worker.domain.selector import Selector, Template, selection_record

MAX_EVERY = 366 * 86_400  # a year and a day: anything longer is not a standing policy
POLICY_TAG_ROOM = TAGS_MAX - len(POLICY_TAGS)  # the template's own tags beside the provenance tags
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


class Overlap(str, Enum):
    """What a due run does while the previous run's batch has not finished."""

    SKIP = "skip"  # recorded as skipped; the next one is due at the schedule's next time
    WAIT = "wait"  # starts at the first tick after the previous run ends


def parse_cron(expression: str) -> crontab:
    """A 5-field cron expression (minute hour day-of-month month day-of-week, UTC) as Celery reads it; a
    ValueError says what is wrong."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise ValueError(f"must have 5 fields ({' '.join(CRON_FIELDS)}), got {len(fields)}")
    try:
        return crontab(**dict(zip(CRON_FIELDS, fields, strict=True)))
    except ValueError as exc:
        raise ValueError(f"is not a cron expression Celery accepts: {exc}") from None


class Schedule(BaseModel):
    """When a policy runs: ``every`` so many seconds, or by ``cron`` (UTC); exactly one of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: int | None = Field(
        None, ge=1, le=MAX_EVERY, description="Seconds between runs (at least IMSREP_POLICY_MIN_INTERVAL)"
    )
    cron: str | None = Field(None, description="A 5-field cron expression in UTC, e.g. `0 3 * * 1-5`")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            parse_cron(v)
        return v

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every (seconds) and cron")
        return self

    def next_after(self, at: float) -> float:
        """The first time after ``at`` (epoch seconds) this schedule runs."""
        if self.every is not None:
            return at + self.every
        assert self.cron is not None
        after = datetime.fromtimestamp(at, tz=timezone.utc)
        start, delta, _ = parse_cron(self.cron).remaining_delta(after, ffwd=ffwd, tz=timezone.utc)
        return (start + delta).timestamp()


class PolicyDefinition(BaseModel):
    """What a user gives (checked by the API: ``api.policy_validation``): the selector and template as a campaign
    takes them, kept as sent once valid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    selector: dict[str, Any]
    template: dict[str, Any]
    schedule: Schedule
    overlap: Overlap = Overlap.SKIP
    retention: Retention | None = None
    paused: bool = False


@dataclass(frozen=True)
class Policy:
    """A stored policy: its definition, whose it is, the account (and region) whose images it selects, and where
    its runs are (``runs``: the last run number; ``starting``: a run claimed whose batch is not recorded yet).

    ``max_unfinished`` is its principal's unfinished-items limit as the API last saw it (the workers do not read the
    principals): a run is not started while the principal is at it. ``made`` adds up the copies of its runs whose
    batches have been counted (``counted``: the latest), each once, as the next run is claimed; ``retired`` the
    copies its retention deleted, as it does."""

    id: str
    definition: PolicyDefinition
    account: str
    region: str
    owner: Owner
    created_at: float
    updated_at: float
    next_run_at: float | None  # None while paused
    runs: int = 0
    last_batch: str | None = None
    last_started: int | None = None  # the number of the run whose batch ``last_batch`` is
    starting: int | None = None
    max_unfinished: int | None = None  # None: its principal has no limit
    made: int = 0
    received: int = 0  # its receivers' copies, counted as ``made`` is
    retired: int = 0
    counted: str | None = None

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def paused(self) -> bool:
        return self.definition.paused

    def selection(self, now: float) -> dict[str, Any]:
        """Its selector batch's selection (a run's, or a plan of the next run's), as the API stores a campaign's;
        with its retention rule, by which a run leaves out the sources whose copies it would retire at once."""
        record = selection_record(
            Selector.model_validate(self.definition.selector),
            Template.model_validate(self.definition.template),
            self.account,
            self.region,
            now,
            policy=self.id,
        )
        retention = self.definition.retention
        return record if retention is None else {**record, "retention": retention.model_dump(mode="json")}

    def to_meta(self) -> dict[str, str]:
        """The definition's fields of its hash (the run fields are written by the claim and the record alone)."""
        return {
            "id": self.id,
            "definition": self.definition.model_dump_json(),
            "account": self.account,
            "region": self.region,
            "created_at": repr(self.created_at),
            "updated_at": repr(self.updated_at),
            "next_run_at": "" if self.next_run_at is None else repr(self.next_run_at),
            "max_unfinished": "" if self.max_unfinished is None else str(self.max_unfinished),
            **self.owner.to_meta(),
        }

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> Policy:
        owner = Owner.from_meta(meta)
        assert owner is not None, meta.get("id")  # every policy records its principal
        return cls(
            id=meta["id"],
            definition=PolicyDefinition.model_validate(json.loads(meta["definition"])),
            account=meta["account"],
            region=meta["region"],
            owner=owner,
            created_at=float(meta["created_at"]),
            updated_at=float(meta["updated_at"]),
            next_run_at=float(meta["next_run_at"]) if meta.get("next_run_at") else None,
            runs=int(meta.get("runs") or 0),
            last_batch=meta.get("last_batch") or None,
            last_started=int(meta["last_started"]) if meta.get("last_started") else None,
            starting=int(meta["starting"]) if meta.get("starting") else None,
            max_unfinished=int(meta["max_unfinished"]) if meta.get("max_unfinished") else None,
            made=int(meta.get("made") or 0),
            received=int(meta.get("received") or 0),
            retired=int(meta.get("retired") or 0),
            counted=meta.get("counted") or None,
        )

    def changed(self, definition: PolicyDefinition, now: float) -> Policy:
        """This policy with a new definition: a new schedule (or a resumed policy) runs next from now."""
        if definition.paused:
            next_run_at = None
        elif self.next_run_at is None or definition.schedule != self.definition.schedule:
            next_run_at = definition.schedule.next_after(now)
        else:
            next_run_at = self.next_run_at
        return replace(self, definition=definition, updated_at=now, next_run_at=next_run_at)


def run_key(policy_id: str, run: int) -> str:
    """The idempotency key of a policy's run: a retried start finds the batch the first made. A principal's keys
    are ``<name>:<key>``, so a key with no ``:`` is no principal's."""
    return f"policy/{policy_id}/run/{run}"
