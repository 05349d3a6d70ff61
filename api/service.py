"""What the routes do, without HTTP: submit, report, cancel and retry, over the data layer and the enqueuer."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from api import access, audit, limits
from api.enqueue import Enqueuer
from api.errors import Conflict, NotFound, Unavailable
from api.principals import Principal
from api.validation import parse_batch, parse_item, receiver_projects
from config.settings import Role, Settings
from worker.data import (
    BatchPage,
    BatchSummary,
    Claim,
    DataLayer,
    Deleted,
    Earlier,
    NewItem,
    PlanRecord,
    PoolStatus,
    Quota,
    StoredBatch,
    StoredPlan,
)
from worker.data.plans import ITEMS, PAGE, PLAN
from worker.data.selections import CANCELLED
from worker.domain import pools
from worker.domain.item import ReplicationItem, Transition
from worker.domain.ownership import Owner
from worker.domain.pools import pool_of
from worker.domain.priority import Priority
from worker.domain.reasons import ReasonCode
from worker.domain.selector import selection_record
from worker.domain.states import CANCELLABLE, Event, ItemState
from worker.pressure import REFUSALS

log = logging.getLogger(__name__)
_Stored = TypeVar("_Stored", StoredBatch, StoredPlan)

_PAGE = 500  # items read per round trip when a whole batch is walked
RUNNING_NOT_CANCELLABLE = "a running IMS copy job cannot be cancelled; items already submitted to IMS will finish"

# Fields a new attempt starts without: the previous attempt's outcome, its IMS job and what validation resolved.
_ATTEMPT_FIELDS = (
    "source_name",
    "source_size",
    "target_name",
    "cmk_id",
    "submit_started_at",
    "job_id",
    "job_started_at",
    "progress",
    "new_image_id",
    "target_project_id",
    "agency_name",
    "followups",
)


@dataclass(frozen=True)
class QuotaNote:
    account: str
    items: int  # in-region copies the batch asks of the account
    waiting: int  # the account's items already waiting for a slot
    reading: Quota
    over_quota: int


@dataclass(frozen=True)
class RetryCounts:
    retried: int  # failed items
    resumed: int  # cancelled items (only when asked)


@dataclass(frozen=True)
class CancelCounts:
    cancelled: int
    already_terminal: int
    not_cancellable_running: int


class ReplicationService:
    def __init__(self, data: DataLayer, enqueuer: Enqueuer, settings: Settings) -> None:
        self.data = data
        self.records = data.records
        self.enqueuer = enqueuer
        self.settings = settings

    # Submitting -------------------------------------------------------------------------------------------------
    def submit_batch(self, who: Principal, payload: Any, key: str | None = None) -> StoredBatch | StoredPlan:
        """Store a batch, or with ``"plan": true`` a plan of it, owned by ``who``; with an ``Idempotency-Key`` it
        already used, what it created (``earlier`` set)."""
        access.need(who, Role.SUBMITTER, "submitting a batch or a plan")
        claim = self._claim(who, key, "POST /v1/batches", payload)
        if claim is not None and (replay := self._replay(claim)) is not None:
            return _noted(replay)
        submission = parse_batch(payload, self.settings)
        accounts = {account for new in submission.items for account in new.accounts}
        if submission.selection is not None:
            accounts.update(submission.selection.accounts)
        template = None if submission.selection is None else submission.selection.template
        asked = [new.spec for new in submission.items] + ([template] if template is not None else [])
        audit.facts().asked(submission.items, accounts, template, receiver_projects(self.settings, asked))
        access.may_act_in(who, accounts)
        owner = Owner.of(who.name, accounts)
        now = time.time()
        selection = None
        if (chosen := submission.selection) is not None:
            selection = selection_record(chosen.selector, chosen.template, chosen.account, chosen.region, now)
        if submission.plan:  # a plan stores verdicts, not items: it takes nothing of the limit
            return _noted(
                self._store_plan(submission.items, claim, owner, now=now, label=submission.label, selection=selection)
            )
        # A selector's items are not known yet: the listed ones count, those it adds count once added.
        limits.room_for(self.data.limits, who, len(submission.items))
        stored = self._store_and_admit(
            submission.items,
            claim,
            owner,
            now=now,
            label=submission.label,
            selection=selection,
            priority=submission.priority,
        )
        return _noted(stored)

    def _store_plan(
        self,
        items: list[NewItem],
        claim: Claim | None,
        owner: Owner,
        *,
        now: float,
        label: str | None,
        selection: dict[str, Any] | None,
    ) -> StoredPlan:
        first = PAGE if selection is not None and not items else ITEMS
        stored = self.data.plans.create(
            items,
            ttl=self.settings.plan_seconds,
            first_stage=first,
            selection=selection,
            label=label,
            claim=claim,
            now=now,
            owner=owner,
        )
        if stored.earlier is not None:
            assert claim is not None
            return self._answer_earlier(claim, stored.earlier)
        self.enqueuer.send_plan(stored.plan_id, first)  # a failure is logged; the reconciler sends it again
        return stored

    def quota_notes(self, items: list[NewItem] | None = None, batch_id: str | None = None) -> list[QuotaNote]:
        """Per account, its last known image quota against the in-region copies this batch asks for (the items
        given, or those a stored batch was submitted with) and those already waiting: a batch that exceeds it
        says so at submission. Accounts whose quota has not been read yet are left out."""
        if items is None:
            ids = self.records.submitted_item_ids(batch_id or "") or []
            asked = [(i.account, i.target_region) for i in self.records.get_items(ids)]
        else:
            asked = [(i.account, i.spec.target_region) for i in items]
        notes = []
        for account, count in sorted(Counter(a for a, region in asked if region is None).items()):
            pool = pools.pool_named(self.settings, account)
            reading = self.data.slots.quota(pool.project) if pool is not None and pool.project else None
            if reading is None or reading.headroom is None:
                continue
            waiting = self.data.slots.queued(account)
            over = max(0, count + waiting - reading.headroom)
            notes.append(QuotaNote(account, count, waiting, reading, over))
        return notes

    def submit_one(self, who: Principal, payload: Any, key: str | None = None) -> StoredBatch:
        access.need(who, Role.SUBMITTER, "submitting a replication")
        claim = self._claim(who, key, "POST /v1/replications", payload)
        if claim is not None and (replay := self._replay(claim)) is not None:
            return _noted(replay)
        item = parse_item(payload, self.settings)
        audit.facts().asked([item], item.accounts, receivers=receiver_projects(self.settings, [item.spec]))
        access.may_act_in(who, item.accounts)
        limits.room_for(self.data.limits, who, 1)
        return _noted(self._store_and_admit([item], claim, Owner.of(who.name, item.accounts)))

    def _store_and_admit(
        self,
        items: list[NewItem],
        claim: Claim | None,
        owner: Owner,
        *,
        now: float | None = None,
        label: str | None = None,
        selection: dict[str, Any] | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> StoredBatch:
        """Store the batch (confirmed by the replicas it must outlive a failover on) and its first message (admit,
        or a selector's first page); a batch whose message cannot be stored is taken back, and nothing of it is
        accepted (503): a 202 means both are in Redis."""
        # One MULTI/EXEC: all of the batch or none of it; NotReplicated (503) when replicas do not confirm it.
        stored = self.records.create_batch(
            items, now, label=label, selection=selection, claim=claim, priority=priority, owner=owner
        )
        if stored.earlier is not None:  # the same key won a race with this request
            assert claim is not None
            return self._answer_earlier(claim, stored.earlier)
        sent = (not items or self.enqueuer.send_admit(stored.batch_id)) and (
            selection is None or self.enqueuer.send_expand(stored.batch_id)
        )
        if not sent and self.records.withdraw(stored, claim):
            raise Unavailable(
                "Redis did not take the batch's first message, so the batch was not accepted (nothing is stored); "
                "send it again shortly"
            )
        # Sent, or taken into the pipeline by the reconciler meanwhile (then it runs: the 202 is true).
        REFUSALS.accepted()
        return stored

    def _claim(self, who: Principal, key: str | None, route: str, payload: Any) -> Claim | None:
        """The request's fingerprint: its route and its body as JSON in one canonical form. Keys are the principal's
        own: another's same key neither replays nor discloses what it made."""
        if key is None:
            return None
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        fingerprint = hashlib.sha256(f"{route}\n{body}".encode()).hexdigest()
        return Claim(f"{who.name}:{key}", fingerprint, self.settings.idempotency_seconds)

    def _replay(self, claim: Claim) -> Any:
        earlier = self.data.idempotency.find(claim.key)
        if earlier is None:
            return None
        # The first answer may have been a 503 because the replicas did not confirm in time: a replay answers 202
        # only once they have what it names (NotReplicated: 503 again).
        self.data.idempotency.confirm()
        return self._answer_earlier(claim, earlier)

    def _answer_earlier(self, claim: Claim, earlier: Earlier) -> Any:
        if earlier.fingerprint != claim.fingerprint:
            raise Conflict(
                "Idempotency-Key: was already used with another request (a different body or path); "
                "send a new key for a new request"
            )
        if earlier.kind == PLAN:
            record = self.data.plans.load(earlier.id)
            if record is None:
                raise Conflict(f"Idempotency-Key: its plan {earlier.id} has expired since; nothing was stored")
            return StoredPlan(earlier.id, record.asked, record.selection is not None, earlier=earlier)
        item_ids = self.records.submitted_item_ids(earlier.id)
        summary = self.records.batch(earlier.id)
        if item_ids is None or summary is None:
            raise Conflict(f"Idempotency-Key: its batch {earlier.id} has been deleted since; nothing was stored")
        return StoredBatch(earlier.id, item_ids, earlier=earlier, selecting=summary.selection is not None)

    # Reading ----------------------------------------------------------------------------------------------------
    def plan(self, who: Principal, plan_id: str) -> PlanRecord:
        record = self.data.plans.load(plan_id)
        missing = f"plan {plan_id} not found (plans are kept {self.settings.plan_seconds} s)"
        if record is None:
            raise NotFound(missing)
        access.in_scope(who, record.owner, missing)
        return record

    def plan_verdicts(
        self, who: Principal, plan_id: str, cursor: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        record = self.plan(who, plan_id)
        verdicts = self.data.plans.verdicts(plan_id, cursor, limit)
        following = cursor + limit
        return verdicts, following if following < record.judged else None

    def batch(self, who: Principal, batch_id: str) -> BatchSummary:
        summary = self.records.batch(batch_id)
        missing = f"batch {batch_id} not found"
        if summary is None:
            raise NotFound(missing)
        access.in_scope(who, summary.owner, missing)
        return summary

    def batches(
        self, who: Principal, *, limit: int, cursor: str | None, label: str | None, state: str | None
    ) -> BatchPage:
        visible = None if who.accounts is None else (lambda summary: access.sees(who, summary.owner))
        return self.data.lifecycle.page(limit=limit, cursor=cursor, label=label, state=state, visible=visible)

    def delete(self, who: Principal, batch_id: str) -> None:
        """Delete a finished batch and its items; a batch with any item not yet terminal is refused (409)."""
        summary = self.batch(who, batch_id)
        audit.facts().acted_on(summary.owner)
        access.need(who, Role.OPERATOR, "deleting a batch")
        outcome = self.data.lifecycle.delete(batch_id)
        if outcome is Deleted.MISSING:
            raise NotFound(f"batch {batch_id} not found")
        if outcome is Deleted.NOT_FINISHED:
            summary = self.batch(who, batch_id)
            busy = {s.value: n for s, n in summary.counts.items() if n and not s.terminal}
            detail = ", ".join(f"{n} {state}" for state, n in busy.items()) or "its selector is still listing images"
            raise Conflict(f"batch {batch_id} is not finished ({detail}); cancel it or wait until every item has ended")
        audit.facts().items = summary.total

    def batch_items(
        self, who: Principal, batch_id: str, state: ItemState | None, limit: int, cursor: int
    ) -> tuple[list[ReplicationItem], int | None]:
        self.batch(who, batch_id)
        return self.records.batch_items(batch_id, state=state, limit=limit, cursor=cursor)

    def replication(self, who: Principal, item_id: str) -> tuple[ReplicationItem, list[Transition]]:
        item = self.records.get_item(item_id)
        missing = f"replication {item_id} not found"
        if item is None:
            raise NotFound(missing)
        if who.outside([item.account]):
            raise access.hidden(who, missing)
        return item, self.records.history(item_id)

    def histories(self, items: list[ReplicationItem]) -> dict[str, list[Transition]]:
        """Each item's history by item ID, read in one round trip."""
        return dict(zip((i.id for i in items), self.records.histories([i.id for i in items]), strict=True))

    def waits(self, items: list[ReplicationItem]) -> dict[str, PoolStatus]:
        """The status of the pool each waiting item waits in line for (its ``wait_reason`` says why), by item ID."""
        waiting = [item for item in items if item.state is ItemState.WAITING]
        if not waiting:
            return {}
        found = {pool.name: pool for item in waiting if (pool := pool_of(self.settings, item)) is not None}
        statuses = {s.pool.name: s for s in self.data.pool_statuses(list(found.values()), time.time())}
        pairs = [(pool.name, item) for item in waiting if (pool := pool_of(self.settings, item)) is not None]
        return {
            item.id: statuses[pool]
            for (pool, item), granted in zip(pairs, self.data.slots.holding(pairs), strict=True)
            if not granted  # granted: its copy call is on its way
        }

    def lines(self, batch_id: str) -> list[tuple[PoolStatus, int]]:
        """Each pool in whose line the batch has items, with how many (one round trip for the counts)."""
        configured = pools.pools(self.settings)
        counts = self.data.slots.batch_queued([p.name for p in configured], batch_id)
        held = [pool for pool in configured if counts[pool.name]]
        return [(status, counts[status.pool.name]) for status in self.data.pool_statuses(held, time.time())]

    # Changing ---------------------------------------------------------------------------------------------------
    def cancel(self, who: Principal, batch_id: str) -> CancelCounts:
        """Cancel every item that has not reached IMS's copy call; each one is an atomic, checked transition. A
        selector still listing is stopped first, so no item is added after the cancellation."""
        owner = self.batch(who, batch_id).owner
        audit.facts().acted_on(owner)
        access.may_change(who, owner, "cancelling a batch")
        by = f"cancelled by {who.name}"
        self.data.selections.stop(batch_id, CANCELLED, by)
        terminal = running = 0
        latencies: list[tuple[str, float, str]] = []  # each item cancelled, timed like a worker's verdicts
        for item in self._all_items(batch_id):
            state = item.state
            if state in CANCELLABLE:
                now = time.time()
                result = self.records.move(
                    item,
                    Event.CANCEL,
                    reason=ReasonCode.CANCELLED,
                    message=by,
                    now=now,
                )
                if result.ok:
                    latencies.append((ItemState.CANCELLED.value, now - item.created_at, item.mode))
                    continue
                state = result.previous  # a worker moved it on since we read it
            if state is not None and state.terminal:
                terminal += 1
            else:
                running += 1
        self.data.telemetry.record_latencies(latencies)
        audit.facts().items = len(latencies)
        return CancelCounts(len(latencies), terminal, running)

    def retry(self, who: Principal, batch_id: str, *, cancelled: bool = False) -> RetryCounts:
        """Put the batch's failed items (and with ``cancelled`` its cancelled ones) back to ``accepted`` as a new
        attempt, then admit them with one message."""
        summary = self.batch(who, batch_id)
        audit.facts().acted_on(summary.owner)
        access.may_change(who, summary.owner, "retrying a batch")
        cleared = dict.fromkeys(_ATTEMPT_FIELDS)
        events = {ItemState.FAILED: Event.RETRY} | ({ItemState.CANCELLED: Event.RESUME} if cancelled else {})
        moved = {Event.RETRY: 0, Event.RESUME: 0}
        for item in self._all_items(batch_id):
            event = events.get(item.state)
            if event is None:
                continue
            # The checked transition makes a concurrent second retry of the same item a no-op. What the failed
            # attempt left in IMS is remembered, so the new one follows a copy that went on instead of making another.
            result = self.records.move(
                item,
                event,
                attempt=item.attempt + 1,
                error_retries=0,
                prior_job_id=item.job_id or item.prior_job_id,
                prior_image_id=item.new_image_id or item.prior_image_id,
                prior_submit_at=item.submit_started_at or item.prior_submit_at,
                **cleared,
            )
            if result.ok and (pool := pool_of(self.settings, item)) is not None:
                self.data.slots.release(pool.name, item)  # a slot its failed attempt still held
            moved[event] += result.ok
        if any(moved.values()):
            if summary.owner is not None:  # unfinished again: its owner's count reads it again
                self.data.limits.reopen(summary.owner.principal, batch_id, summary.created_at)
            self.records.admit_progress(batch_id, 0, time.time())  # the reconciler resends it if it is lost
            self.enqueuer.send_admit(batch_id)
        audit.facts().items = moved[Event.RETRY] + moved[Event.RESUME]
        return RetryCounts(moved[Event.RETRY], moved[Event.RESUME])

    def _all_items(self, batch_id: str) -> Iterator[ReplicationItem]:
        cursor: int | None = 0
        while cursor is not None:
            page, cursor = self.records.batch_items(batch_id, limit=_PAGE, cursor=cursor)
            yield from page


def _noted(stored: _Stored) -> _Stored:
    """``stored``, its ID noted for the audit trail (a replayed request's too: the batch its first request made)."""
    if isinstance(stored, StoredPlan):
        audit.facts().plan_id = stored.plan_id
    else:
        audit.facts().batch_id = stored.batch_id
    return stored
