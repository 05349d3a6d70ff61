"""The stored record of one replication item, as the API shows it and the workers move it along."""

from __future__ import annotations

import json

from pydantic import BaseModel, field_validator

from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState


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
    tags: dict[str, str] | None = None  # for the copy, applied after it is active (stored as JSON)
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
    # The copy: recorded before the call (so a crash can adopt the copy IMS made), then the job and its result.
    submit_started_at: float | None = None
    job_id: str | None = None
    job_started_at: float | None = None
    progress: float | None = None
    new_image_id: str | None = None
    # The poll chain's sequence number (worker.steps.poll); None before the first poll was scheduled.
    poll_seq: int | None = None
    # Transient cloud errors retried for this item, across all its steps.
    error_retries: int = 0

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_from_json(cls, v: object) -> object:
        return json.loads(v) if isinstance(v, str) else v

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    def to_redis(self) -> dict[str, str]:
        """Flat string fields; None is stored as the empty string, a mapping as JSON."""
        return {k: _flat(v) for k, v in self}

    @classmethod
    def from_redis(cls, data: dict[str, str]) -> ReplicationItem:
        return cls(**{k: (v if v != "" else None) for k, v in data.items() if k in cls.model_fields})


def _flat(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value.value) if hasattr(value, "value") else str(value)
