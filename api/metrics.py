"""Prometheus metrics read from Redis at scrape time, so the API process keeps no counters of its own.

Each API replica reports the same cluster-wide numbers; scrape one, or aggregate with ``max``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from config.settings import Settings
from worker.metrics import as_text, latency_key, read_latency, retries_key
from worker.queues import Queue
from worker.store import RecordStore

log = logging.getLogger(__name__)

# kombu's Redis transport keeps a queue's prioritised messages in extra lists: name + sep + step (steps 3, 6, 9).
_PRIORITY_SUFFIXES = ["", "\x06\x163", "\x06\x166", "\x06\x169"]


def queue_backlog(client: redis.Redis, queue: str) -> int:
    pipe = client.pipeline(transaction=False)
    for suffix in _PRIORITY_SUFFIXES:
        pipe.llen(queue + suffix)
    return sum(int(n) for n in pipe.execute())


def workers_seen(client: redis.Redis, settings: Settings, now: float | None = None) -> int:
    """Workers whose heartbeat in ``<prefix>:workers`` is at most ``worker_seen_seconds`` old."""
    now = time.time() if now is None else now
    return int(client.zcount(f"{settings.key_prefix}:workers", now - settings.worker_seen_seconds, "+inf"))


class RedisCollector(Collector):
    def __init__(self, store: RecordStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("imsrep_redis_up", "1 if Redis answered this scrape, else 0")
        try:
            metrics = self._from_redis()
        except redis.RedisError as exc:
            # Still answer, so an outage shows as a value rather than as a failed scrape.
            log.warning("metrics: Redis unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _from_redis(self) -> list[Metric]:
        client, prefix = self.store.redis, self.settings.key_prefix
        items = GaugeMetricFamily("imsrep_items", "Replication items by state", labels=["state"])
        for state, n in self.store.counts_by_state().items():
            items.add_metric([state.value], n)

        in_use = GaugeMetricFamily("imsrep_slots_in_use", "IMS replication slots held", labels=["account"])
        limit = GaugeMetricFamily("imsrep_slots_limit", "IMS replication slots allowed", labels=["account"])
        names = sorted(self.settings.accounts)
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.zcard(f"{prefix}:slots:{name}")
        for name, held in zip(names, pipe.execute(), strict=True):
            in_use.add_metric([name], int(held))
            limit.add_metric([name], self.settings.accounts[name].slot_limit)

        backlog = GaugeMetricFamily("imsrep_queue_backlog", "Messages waiting in a stage queue", labels=["queue"])
        for queue in Queue:
            backlog.add_metric([queue.value], queue_backlog(client, queue.value))

        workers = GaugeMetricFamily("imsrep_workers_seen", "Workers with a recent heartbeat")
        workers.add_metric([], workers_seen(client, self.settings))

        # What the workers record in Redis (worker/ratelimit.py, worker/steps/reconcile.py, worker/metrics.py).
        calls = CounterMetricFamily(
            "imsrep_ims_responses", "IMS/KMS/IAM calls by endpoint and outcome", labels=["endpoint", "outcome"]
        )
        for field, n in client.hgetall(f"{prefix}:ims:outcomes").items():
            endpoint, _, outcome = as_text(field).partition(":")
            calls.add_metric([endpoint, outcome], int(n))
        repairs = CounterMetricFamily("imsrep_reconciler_repairs", "Repairs made by the reconciler", labels=["kind"])
        for kind, n in client.hgetall(f"{prefix}:repairs").items():
            repairs.add_metric([as_text(kind)], int(n))
        retries = CounterMetricFamily(
            "imsrep_retries",
            "Steps rescheduled after a retryable error (transient: a cloud error; rate_limited: our own limiter)",
            labels=["task", "cause"],
        )
        for field, n in client.hgetall(retries_key(prefix)).items():
            task, _, cause = as_text(field).rpartition(":")
            retries.add_metric([task, cause], int(n))
        latency = HistogramMetricFamily(
            "imsrep_item_latency_seconds",
            "Seconds from an item's acceptance to the terminal state a worker moved it to",
            labels=["state"],
        )
        for state, histogram in sorted(read_latency(client.hgetall(latency_key(prefix))).items()):
            latency.add_metric([state], histogram.buckets, histogram.total)
        return [items, in_use, limit, backlog, workers, calls, repairs, retries, latency]
