"""The stored record of one replication item, as the API shows it and the workers move it along."""

from __future__ import annotations

import json

from pydantic import BaseModel

from worker.domain.distribution import Receiver
from worker.domain.followups import Followups
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState

IN_REGION = "in-region"
CROSS_REGION = "cross-region"
# Fields stored as JSON text in the item's hash (the rest are flat strings).
JSON_FIELDS = frozenset({"share_with", "distribute", "tags", "followups"})


class Transition(BaseModel):
    state: ItemState
    at: float
    reason: ReasonCode | None = None
    message: str | None = None


class ReplicationItem(BaseModel):
    id: str
    batch_id: str
    account: str
    image_id: str
    # What the user asked for (None where they left it to the default).
    name: str | None = None
    description: str | None = None
    kms_key: str | None = None
    enterprise_project_id: str | None = None
    # Across regions (None: within the account's region), and what to do with the copy once it is active.
    target_region: str | None = None
    target_project: str | None = None  # the destination project's name; None: the region's default project
    agency: str | None = None
    share_with: list[str] | None = None
    distribute: list[Receiver] | None = None  # its receivers (worker.domain.distribution)
    withdraw_share: bool | None = None  # remove its receivers from the members once each has its own copy
    tags: dict[str, str] | None = None
    provenance: bool | None = None  # provenance tags; None: the server's IMSREP_PROVENANCE_TAGS
    line: int | None = None  # its line in the submitter's manifest (absent from records stored before it existed)
    # A receiver item (worker.steps.distribute): the item whose shared copy it copies, and the member job by which
    # its account accepted the share.
    parent_id: str | None = None
    accept_job_id: str | None = None
    # Where it stands.
    state: ItemState
    reason: ReasonCode | None = None
    message: str | None = None
    attempt: int = 1
    created_at: float
    updated_at: float
    # Resolved by validation.
    source_name: str | None = None
    source_size: int | None = None  # bytes (IMS __image_size): what the copy's duration is forecast from
    target_name: str | None = None
    cmk_id: str | None = None
    target_project_id: str | None = None  # the destination project's ID (cross-region)
    agency_name: str | None = None  # the agency the cross-region copy names
    # The copy: recorded before the call (so a crash can adopt the copy IMS made), then the job and its result.
    submit_started_at: float | None = None
    job_id: str | None = None
    job_started_at: float | None = None
    progress: float | None = None
    new_image_id: str | None = None
    # The poll chain's sequence number (worker.steps.poll); None before the first poll was scheduled.
    poll_seq: int | None = None
    # Transient cloud errors retried for this item in its current step (a step that moves it on starts afresh).
    error_retries: int = 0
    # Tags and sharing once the copy is active (worker.domain.followups); None while there is nothing to report.
    followups: Followups | None = None
    # Its row in its batch (0-based: the manifest's order, then a selector's as it lists): its place in its pool's
    # line. None on records stored before positions were kept (such an item queues by its arrival).
    position: int | None = None
    # When it joined its pool's line (it keeps its place when IMS hands it back), and the account's outage
    # seconds when its copy started (a copy's deadline counts the cloud's time, not an outage's).
    queued_at: float | None = None
    outage_mark: float | None = None
    # What a previous attempt left in IMS: a retry looks there before it copies again.
    prior_job_id: str | None = None
    prior_image_id: str | None = None
    prior_submit_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    @property
    def job_done(self) -> bool:
        """IMS's job ended well and named the new image, which is still to be seen active: the job no longer counts
        against the project's concurrent copies, so the item holds no replication slot."""
        return self.job_id is not None and self.new_image_id is not None

    @property
    def receives_share(self) -> bool:
        """A distribution's receiver item: an in-region copy of its parent's shared copy, made by the receiver after
        it accepted the share. (A parent's cross-region item, carrying its copy into its receivers' region, is a
        copy of the parent's own image.)"""
        return self.parent_id is not None and self.target_region is None

    @property
    def mode(self) -> str:
        """``in-region`` or ``cross-region``: IMS counts the two kinds of copy apart."""
        return CROSS_REGION if self.target_region else IN_REGION

    @property
    def destination_project(self) -> str | None:
        """The destination project's name: the one asked for, or the region's default one (named after it)."""
        return self.target_project or self.target_region

    def to_redis(self) -> dict[str, str]:
        """Flat string fields; None is stored as the empty string, lists and objects as JSON."""
        return {k: redis_value(v) for k, v in self}

    @classmethod
    def from_redis(cls, data: dict[str, str]) -> ReplicationItem:
        return cls(
            **{
                k: (json.loads(v) if k in JSON_FIELDS else v)
                for k, v in data.items()
                if k in cls.model_fields and v != ""
            }
        )


def redis_value(value: object) -> str:
    """How one field is stored: '' for None, an enum's value, JSON for lists, dicts and models, else str()."""
    if value is None:
        return ""
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, list):
        value = [v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value.value) if hasattr(value, "value") else str(value)
