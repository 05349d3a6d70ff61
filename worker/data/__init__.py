"""The data layer: everything the API, the steps, the tasks and the metrics keep in Redis, behind verbs.

Layers: routes and tasks -> steps (``worker.steps``) -> this package -> Redis. Keys are made only in
``keyspace``; Lua only in ``lua/``; connections only in ``connection``. ``docs/architecture.md`` has the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.data.accounts import AccountState, QuotaReading
from worker.data.connection import connect
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
    "Earlier",
    "Histogram",
    "IdempotencyKeys",
    "Keyspace",
    "NewItem",
    "PlanRecord",
    "Plans",
    "QuotaReading",
    "RecordStore",
    "Selection",
    "SelectionProgress",
    "Selections",
    "SlotPool",
    "StoredBatch",
    "StoredPlan",
    "Telemetry",
    "TransitionResult",
    "open_data_layer",
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
    def over(cls, client: redis.Redis, prefix: str) -> DataLayer:
        keys = Keyspace(prefix)
        records = RecordStore(client, keys)
        return cls(
            records=records,
            slots=SlotPool(client, keys),
            accounts=AccountState(client, keys),
            telemetry=Telemetry(client, keys),
            control=Control(client, keys),
            idempotency=IdempotencyKeys(client, keys),
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


def open_data_layer(redis_url: str, prefix: str) -> DataLayer:
    return DataLayer.over(connect(redis_url), prefix)
