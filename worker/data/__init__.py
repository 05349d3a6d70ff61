"""The data layer: everything the API, the steps, the tasks and the metrics keep in Redis, behind verbs.

Layers: routes and tasks -> steps (``worker.steps``) -> this package -> Redis. Keys are made only in
``keyspace``; Lua only in ``lua/``; connections only in ``connection``. ``docs/architecture.md`` has the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.data.accounts import AccountState, QuotaReading
from worker.data.connection import Durability, NotReplicated, RedisTarget, connect, redis_target, unavailable
from worker.data.control import Control
from worker.data.idempotency import Claim, Earlier, IdempotencyKeys
from worker.data.keyspace import Keyspace
from worker.data.lifecycle import BatchLifecycle, BatchPage, Deleted
from worker.data.plans import PlanRecord, Plans, StoredPlan
from worker.data.records import BatchSummary, NewItem, RecordStore, StoredBatch, TransitionResult
from worker.data.selections import Selection, SelectionProgress, Selections
from worker.data.slots import SlotPool
from worker.data.telemetry import Histogram, Telemetry

__all__ = [
    "AccountState",
    "BatchLifecycle",
    "BatchPage",
    "BatchSummary",
    "Claim",
    "Control",
    "DataLayer",
    "Deleted",
    "Durability",
    "Earlier",
    "Histogram",
    "IdempotencyKeys",
    "Keyspace",
    "NewItem",
    "NotReplicated",
    "PlanRecord",
    "Plans",
    "QuotaReading",
    "RecordStore",
    "RedisTarget",
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


@dataclass
class DataLayer:
    records: RecordStore
    slots: SlotPool
    accounts: AccountState
    telemetry: Telemetry
    control: Control
    idempotency: IdempotencyKeys
    lifecycle: BatchLifecycle
    selections: Selections
    plans: Plans
    _client: redis.Redis

    @classmethod
    def over(cls, client: redis.Redis, prefix: str, durability: Durability | None = None) -> DataLayer:
        keys = Keyspace(prefix)
        durability = durability or Durability()
        records = RecordStore(client, keys, durability)
        return cls(
            records=records,
            slots=SlotPool(client, keys),
            accounts=AccountState(client, keys),
            telemetry=Telemetry(client, keys),
            control=Control(client, keys),
            idempotency=IdempotencyKeys(client, keys, durability),
            lifecycle=BatchLifecycle(client, keys, records),
            selections=Selections(client, keys),
            plans=Plans(client, keys),
            _client=client,
        )

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
