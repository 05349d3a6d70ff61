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

from api.policy_metrics import policy_metrics
from config.settings import Settings
from worker.data import DataLayer
from worker.domain.pools import pools, split_pool
from worker.domain.waits import BlockedBy
from worker.queues import Queue

log = logging.getLogger(__name__)


def workers_seen(data: DataLayer, settings: Settings, now: float | None = None) -> int:
    """Workers whose heartbeat is at most ``worker_seen_seconds`` old."""
    now = time.time() if now is None else now
    return data.telemetry.workers_seen(now - settings.worker_seen_seconds)


def beats_seen(data: DataLayer, settings: Settings, now: float | None = None) -> int:
    """Beats whose scheduler ticked at most ``worker_seen_seconds`` ago (a beat ticks every few seconds)."""
    now = time.time() if now is None else now
    return data.telemetry.beats_seen(now - settings.worker_seen_seconds)


class RedisCollector(Collector):
    def __init__(self, data: DataLayer, settings: Settings) -> None:
        self.data = data
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
        data, telemetry = self.data, self.data.telemetry
        items = GaugeMetricFamily("imsrep_items", "Replication items by state", labels=["state"])
        for state, n in data.records.counts_by_state().items():
            items.add_metric([state.value], n)

        labels = ["account", "mode"]  # IMS counts in-region and cross-region copies apart
        in_use = GaugeMetricFamily("imsrep_slots_in_use", "IMS replication slots held", labels=labels)
        limit = GaugeMetricFamily("imsrep_slots_limit", "IMS replication slots allowed", labels=labels)
        others = GaugeMetricFamily(
            "imsrep_slots_taken_by_others",
            "Slots IMS says are full with copies made elsewhere (probed back one at a time)",
            labels=labels,
        )
        waiting = GaugeMetricFamily(
            "imsrep_items_waiting",
            "Items in line for a slot, by what holds them: slots, outage, quota or ims_full",
            labels=[*labels, "blocked_by"],
        )
        circuit = GaugeMetricFamily(
            "imsrep_account_circuit_open",
            "1 while the account is in an outage (one circuit per account: both of its modes show it)",
            labels=labels,
        )
        quota_used = GaugeMetricFamily("imsrep_image_quota_used", "Private images counted by IMS", labels=["account"])
        quota_limit = GaugeMetricFamily("imsrep_image_quota", "Private-image quota of the project", labels=["account"])
        for status in data.pool_statuses(pools(self.settings), time.time()):
            pool = list(split_pool(status.pool.name))
            in_use.add_metric(pool, status.in_use)
            limit.add_metric(pool, status.pool.limit)
            others.add_metric(pool, status.taken_by_others)
            waiting.add_metric([*pool, (status.blocked_by or BlockedBy.SLOTS).value], status.queued)
            circuit.add_metric(pool, int(status.health.open))
            # Once per account: its in-region pool, whose copies the project's quota counts.
            if status.pool.project is not None and status.quota.quota is not None:
                quota_used.add_metric([status.pool.account], status.quota.used)
                quota_limit.add_metric([status.pool.account], status.quota.quota)

        backlog = GaugeMetricFamily("imsrep_queue_backlog", "Messages waiting in a stage queue", labels=["queue"])
        for queue in Queue:
            backlog.add_metric([queue.value], telemetry.queue_backlog(queue.value))

        workers = GaugeMetricFamily("imsrep_workers_seen", "Workers with a recent heartbeat")
        workers.add_metric([], workers_seen(data, self.settings))
        beats = GaugeMetricFamily("imsrep_beats_seen", "Beats whose scheduler ticked recently (0: nothing resends)")
        beats.add_metric([], beats_seen(data, self.settings))
        episodes = CounterMetricFamily(
            "imsrep_redis_refusal_episodes",
            "Ended episodes of Redis refusing a process's writes (memory limit, failover, unreachable)",
            labels=["process"],
        )
        refused = CounterMetricFamily(
            "imsrep_redis_refused_seconds",
            "Seconds Redis refused a process's writes, over ended episodes",
            labels=["process"],
        )
        for process, (count, seconds) in sorted(telemetry.refusals().items()):
            episodes.add_metric([process], count)
            refused.add_metric([process], seconds)

        calls = CounterMetricFamily(
            "imsrep_ims_responses", "IMS/KMS/IAM calls by endpoint and outcome", labels=["endpoint", "outcome"]
        )
        for (endpoint, outcome), n in telemetry.ims_outcomes().items():
            calls.add_metric([endpoint, outcome], n)
        repairs = CounterMetricFamily("imsrep_reconciler_repairs", "Repairs made by the reconciler", labels=["kind"])
        for kind, n in telemetry.repairs().items():
            repairs.add_metric([kind], n)
        retries = CounterMetricFamily(
            "imsrep_retries",
            "Steps rescheduled after a retryable error (transient: a cloud error; rate_limited: our own limiter)",
            labels=["task", "cause"],
        )
        for (task, cause), n in telemetry.retries().items():
            retries.add_metric([task, cause], n)
        latency = HistogramMetricFamily(
            "imsrep_item_latency_seconds",
            "Seconds from an item's acceptance to the terminal state a worker moved it to",
            labels=["state", "mode"],
        )
        for (state, mode), histogram in sorted(telemetry.latency().items()):
            latency.add_metric([state, mode], histogram.buckets, histogram.total)
        followups = CounterMetricFamily(
            "imsrep_followups",
            "Follow-ups of active copies (tags, share) that ended applied or failed (the copy stands either way)",
            labels=["kind", "outcome"],
        )
        for (kind, outcome), n in sorted(telemetry.followups().items()):
            followups.add_metric([kind, outcome], n)
        health = [workers, beats, episodes, refused]
        scheduling = [in_use, limit, others, waiting, circuit, quota_used, quota_limit]
        outcomes = [calls, repairs, retries, latency, followups]
        return [items, *scheduling, backlog, *health, *outcomes, *policy_metrics(data)]
