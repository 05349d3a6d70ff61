"""The data layer: everything the API, the steps, the tasks and the metrics keep in Redis, behind verbs.

Layers: routes and tasks -> steps (``worker.steps``) -> this package -> Redis. Keys are made only in
``keyspace``; Lua only in ``lua/``; connections only in ``connection``. ``docs/architecture.md`` has the map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis

from worker.data.accounts import AccountState, Health, health_from
from worker.data.audit import AuditPage, AuditRecord, AuditTrail
from worker.data.checks import ImageChecks
from worker.data.connection import Durability, NotReplicated, RedisTarget, connect, redis_target, unavailable
from worker.data.control import Control
from worker.data.idempotency import Claim, Earlier, IdempotencyKeys
from worker.data.keyspace import Keyspace
from worker.data.lifecycle import BatchLifecycle, BatchPage, Deleted
from worker.data.limits import PrincipalLimits
from worker.data.plans import PlanRecord, Plans, StoredPlan
from worker.data.policies import Finished, Policies, Run
from worker.data.policy_status import Outcome, PolicyStatus, statuses
from worker.data.records import BatchSummary, NewItem, RecordStore, StoredBatch, TransitionResult
from worker.data.selections import Selection, SelectionProgress, Selections
from worker.data.slots import Capacity, Granted, Quota, QuotaAge, SlotPool, quota_from
from worker.data.tally import Tally
from worker.data.telemetry import Histogram, Telemetry
from worker.data.walks import ListingWalks
from worker.domain.item import ReplicationItem
from worker.domain.policy import Policy
from worker.domain.pools import Pool
from worker.domain.states import Event
from worker.domain.waits import BlockedBy, hint

__all__ = [
    "AccountState",
    "AuditPage",
    "AuditRecord",
    "AuditTrail",
    "BatchLifecycle",
    "BatchPage",
    "BatchSummary",
    "Claim",
    "Control",
    "DataLayer",
    "Deleted",
    "Durability",
    "Earlier",
    "Finished",
    "Granted",
    "Histogram",
    "IdempotencyKeys",
    "ImageChecks",
    "ListingWalks",
    "Keyspace",
    "NewItem",
    "NotReplicated",
    "Outcome",
    "PlanRecord",
    "Plans",
    "Policies",
    "PolicyStatus",
    "PoolStatus",
    "PrincipalLimits",
    "Queued",
    "Quota",
    "QuotaAge",
    "Capacity",
    "RecordStore",
    "RedisTarget",
    "Run",
    "Selection",
    "SelectionProgress",
    "Selections",
    "SlotPool",
    "StoredBatch",
    "StoredPlan",
    "Telemetry",
    "TransitionResult",
    "open_data_layer",
    "redis_target",
    "unavailable",
]


@dataclass(frozen=True)
class Queued:
    """An item joining its pool's line (``DataLayer.wait_for_slots``), with its batch's stride and fields to set."""

    item: ReplicationItem
    pool: Pool
    stride: float
    fields: dict[str, object]


@dataclass(frozen=True)
class PoolStatus:
    """A pool as an operator sees it: its slots, its line, and what IMS's own state does to them."""

    pool: Pool
    in_use: int
    queued: int
    effective: int  # the limit granted against now (lower while IMS says copies made elsewhere hold slots)
    health: Health
    quota: Quota

    @property
    def taken_by_others(self) -> int:
        return self.pool.limit - self.effective

    @property
    def wait_reason(self) -> BlockedBy:
        """What keeps an item in this pool's line from a slot right now (``worker.domain.waits``), line or none."""
        if self.health.open:
            return BlockedBy.OUTAGE
        if self.quota.headroom == 0:
            return BlockedBy.QUOTA
        if self.in_use >= self.effective and self.effective < self.pool.limit:
            return BlockedBy.IMS_FULL
        return BlockedBy.SLOTS

    @property
    def blocked_by(self) -> BlockedBy | None:
        """What holds the line: ``wait_reason`` while items are queued, else None."""
        return self.wait_reason if self.queued else None

    @property
    def hint(self) -> str:
        """``wait_reason`` in words, with this pool's project and next probe."""
        return hint(self.wait_reason, project=self.pool.project, next_probe_at=self.health.probe_at)


@dataclass
class DataLayer:
    records: RecordStore
    slots: SlotPool
    accounts: AccountState
    checks: ImageChecks
    walks: ListingWalks
    telemetry: Telemetry
    control: Control
    idempotency: IdempotencyKeys
    lifecycle: BatchLifecycle
    selections: Selections
    plans: Plans
    policies: Policies
    limits: PrincipalLimits
    audit: AuditTrail
    keys: Keyspace
    _client: redis.Redis
    _tally: Tally

    @classmethod
    def over(cls, client: redis.Redis, prefix: str, durability: Durability | None = None) -> DataLayer:
        keys = Keyspace(prefix)
        durability = durability or Durability()
        records = RecordStore(client, keys, durability)
        tally = Tally()
        return cls(
            records=records,
            slots=SlotPool(client, keys),
            accounts=AccountState(client, keys, tally),
            checks=ImageChecks(client, keys),
            walks=ListingWalks(client, keys),
            telemetry=Telemetry(client, keys, tally),
            control=Control(client, keys),
            idempotency=IdempotencyKeys(client, keys, durability),
            lifecycle=BatchLifecycle(client, keys, records),
            selections=Selections(client, keys),
            plans=Plans(client, keys),
            policies=Policies(client, keys),
            limits=PrincipalLimits(client, keys),
            audit=AuditTrail(client, keys),
            keys=keys,
            _client=client,
            _tally=tally,
        )

    def wait_for_slot(
        self,
        item: ReplicationItem,
        event: Event,
        pool: Pool,
        stride: float,
        now: float,
        *,
        arrival: float | None = None,
        **fields: object,
    ) -> TransitionResult:
        """Move the item to ``waiting`` and into its pool's line in one transaction (a crash cannot leave it
        waiting but unqueued). A hand-back (IMS was full) also frees its slot; it keeps its place (its position,
        and its first ``arrival`` as ``queued_at``)."""
        arrival = now if arrival is None else arrival
        pipe = self._client.pipeline(transaction=True)
        self._queue(pipe, item, event, pool, stride, now, arrival, fields)
        return RecordStore.result_of(pipe.execute()[0])

    def wait_for_slots(self, entries: Sequence[Queued], now: float) -> list[bool]:
        """``wait_for_slot`` of validated items, many in one round trip (each still moved and queued in the same
        transaction: one account's items in an admit chunk can be hundreds); whether each moved."""
        pipe = self._client.pipeline(transaction=True)
        for entry in entries:
            self._queue(pipe, entry.item, Event.VALIDATED, entry.pool, entry.stride, now, now, entry.fields)
        answers = pipe.execute()
        return [RecordStore.result_of(answers[2 * i]).ok for i in range(len(entries))]

    def _queue(
        self,
        pipe: redis.client.Pipeline,
        item: ReplicationItem,
        event: Event,
        pool: Pool,
        stride: float,
        now: float,
        arrival: float,
        fields: dict[str, object],
    ) -> None:
        self.records.move(item, event, now=now, pipe=pipe, queued_at=arrival, **fields)
        if event is Event.HAND_BACK:
            self.slots.release(pool.name, item, pipe=pipe)
        self.slots.enqueue(pool, item, arrival, stride, pipe=pipe)

    def steps_sent(self, dues: Mapping[str, float]) -> None:
        """Record when each item's next step is due (a message was just sent for it) and add up the metrics
        counted meanwhile (``Tally``), in one round trip."""
        pipe = self._client.pipeline(transaction=True)  # a histogram's buckets, sum and count move together
        if dues:
            pipe.zadd(self.keys.due(), dict(dues))
        self._tally.into(pipe)
        if len(pipe):
            pipe.execute()

    def flush(self) -> None:
        """Add up the metrics counted since the last time (``Tally``): at the end of a task that sent nothing."""
        if self._tally:
            self.steps_sent({})

    def policy_statuses(self, policies: Sequence[Policy]) -> list[PolicyStatus]:
        """Each policy's latest run, outcome, lag and copies (``worker.data.policy_status``)."""
        return statuses(self.policies, self.records, policies)

    def pool_statuses(self, pools: Sequence[Pool], now: float) -> list[PoolStatus]:
        """Every pool's status in one round trip (``/metrics`` and the account view read them all)."""
        k = self.keys
        pipe = self._client.pipeline(transaction=False)
        for pool in pools:
            pipe.zcard(k.slots(pool.name))
            pipe.llen(k.waiting(pool.name))
            pipe.hget(k.pool(pool.name), "effective")
            pipe.hgetall(k.health(pool.account))
            pipe.hgetall(k.quota(pool.project))
        found = pipe.execute()
        statuses = []
        for i, pool in enumerate(pools):
            in_use, queued, effective, health, quota = found[5 * i : 5 * i + 5]
            statuses.append(
                PoolStatus(
                    pool=pool,
                    in_use=int(in_use),
                    queued=int(queued),
                    effective=pool.limit if effective is None else int(effective),
                    health=health_from(health, now),
                    quota=quota_from(quota),
                )
            )
        return statuses

    def ping(self) -> None:
        """Raise a ``redis.RedisError`` unless Redis answers."""
        self._client.ping()

    def memory_used(self) -> int:
        """Bytes of memory Redis uses (``INFO memory``)."""
        return int(self._client.info("memory")["used_memory"])

    def close(self) -> None:
        self._client.close()


def open_data_layer(target: RedisTarget | str, prefix: str) -> DataLayer:
    """The data layer over Redis at ``target`` (``redis_target(settings)``, or a plain URL in tests)."""
    if isinstance(target, str):
        target = RedisTarget(target)
    return DataLayer.over(connect(target), prefix, Durability(target.min_replicas, target.replica_timeout))
