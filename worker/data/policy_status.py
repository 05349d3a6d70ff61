"""A policy as its users watch it (``imsrep policy status``, ``GET /v1/policies``, the ``imsrep_policy_*`` metrics):
its latest run and that run's outcome, the lag its latest started run measured, and the copies its runs made and
retired. Read from Redis in four round trips for any number of policies, with no cloud call.

The lag is the age of the oldest image the run selected that had no copy yet, at the run's start: the run notes it
as it pages through the listing it makes anyway (``worker.steps.select``). A policy that keeps up shows less than
one interval (images made since the run before); one that falls behind, or whose copies fail, shows more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from worker.data.policies import Finished, Policies, Run
from worker.data.records import BatchSummary, RecordStore
from worker.domain.policy import Policy
from worker.domain.states import ItemState


class Outcome(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every item it made succeeded (or it had nothing to copy)
    FAILED = "failed"  # some item failed, was refused or was cancelled: its source has no copy yet
    SKIPPED = "skipped"  # not started: its message says why
    DELETED = "deleted"  # its batch has been deleted (or has expired) since


def finished(batch: BatchSummary) -> Finished:
    """An ended run's batch and the copies it made, as the next claim counts them."""
    return Finished(batch.batch_id, batch.copies_made, batch.received)


def run_lag(batch: BatchSummary | None) -> float | None:
    """A run's lag in seconds (see the module's docstring), from its batch: 0 when every image it selected had a
    copy; None before it has read its copies, or once its batch is gone."""
    selection = None if batch is None else batch.selection
    if batch is None or selection is None or not selection.copies_read:
        return None
    if selection.oldest_uncopied is None:
        return 0.0
    return max(0.0, batch.created_at - selection.oldest_uncopied)


@dataclass(frozen=True)
class PolicyStatus:
    policy: Policy
    last: Run | None  # the latest run, skipped or not
    started: Run | None  # the latest run that started a batch
    batch: BatchSummary | None  # that batch as it is now (None: none yet, or deleted since)
    retirements: list[dict[str, Any]] = field(default_factory=list)  # the latest run's retention verdicts

    @property
    def last_batch(self) -> BatchSummary | None:
        """The latest run's batch (None: it was skipped, or its batch is gone)."""
        return self.batch if self.last is not None and self.last == self.started else None

    @property
    def outcome(self) -> Outcome | None:
        """The latest run's outcome (None before the first)."""
        if self.last is None:
            return None
        if self.last.skipped:
            return Outcome.SKIPPED
        return self.batch_outcome

    @property
    def batch_outcome(self) -> Outcome:
        """The latest started run's outcome."""
        batch = self.batch
        if batch is None:
            return Outcome.DELETED
        if not batch.done:
            return Outcome.RUNNING
        return Outcome.SUCCEEDED if batch.counts.get(ItemState.SUCCEEDED, 0) >= batch.total else Outcome.FAILED

    @property
    def lag(self) -> float | None:
        """The latest started run's lag (``run_lag``)."""
        return run_lag(self.batch)

    @property
    def made(self) -> int:
        """Copies its runs made in its account: the total counted, and the latest started run's so far while it is
        not (a total that only grows while their batches are kept)."""
        uncounted = self._uncounted
        return self.policy.made + (uncounted.made if uncounted else 0)

    @property
    def received(self) -> int:
        """Its receivers' private copies, the distributions of its runs made (counted as ``made`` is)."""
        uncounted = self._uncounted
        return self.policy.received + (uncounted.received if uncounted else 0)

    @property
    def _uncounted(self) -> Finished | None:
        """The latest started run's batch, so far, while its copies are not in the policy's totals yet."""
        if self.batch is None or self.batch.batch_id == self.policy.counted:
            return None
        return finished(self.batch)

    @property
    def retired(self) -> int:
        """Copies its runs' retention retired (counted as each is: ``Policies.record_retirements``)."""
        return self.policy.retired


def statuses(store: Policies, records: RecordStore, policies: Sequence[Policy]) -> list[PolicyStatus]:
    """Each policy's status, in ``policies``' order."""
    latest = [(p.id, p.runs or None) for p in policies]
    runs = store.runs_numbered(latest + [(p.id, p.last_started) for p in policies])
    retirements = store.retirements_numbered(latest)
    batches = records.batches([p.last_batch or "" for p in policies])
    n = len(policies)
    return [
        PolicyStatus(policy, runs[i], runs[n + i], batches[i] if policy.last_batch else None, retirements[i])
        for i, policy in enumerate(policies)
    ]
