"""The ``imsrep_policy_*`` metrics: each standing policy's runs, its latest run's outcome, the copies its runs made
and retired, and its lag (``worker.data.policy_status``). Labelled by policy ID alone, so that the series are as
many as the policies (a name can change; a run number or batch would make a series per run)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, StateSetMetricFamily

from worker.data import DataLayer, Outcome

LABELS = ["policy"]


def policy_metrics(data: DataLayer) -> list[Metric]:
    runs = CounterMetricFamily("imsrep_policy_runs", "Runs of the policy so far, skipped ones included", labels=LABELS)
    last_run = GaugeMetricFamily(
        "imsrep_policy_last_run_timestamp_seconds", "When the policy's latest run was due and claimed", labels=LABELS
    )
    next_run = GaugeMetricFamily(
        "imsrep_policy_next_run_timestamp_seconds", "When the policy's next run is due (none: paused)", labels=LABELS
    )
    outcome = StateSetMetricFamily(
        "imsrep_policy_last_run_outcome",
        "The latest run's outcome: running, succeeded, failed (some source not copied), skipped or deleted",
        labels=LABELS,
    )
    made = CounterMetricFamily("imsrep_policy_copies_made", "Copies the policy's runs made", labels=LABELS)
    received = CounterMetricFamily(
        "imsrep_policy_receiver_copies",
        "Private copies the receivers of the policy's distributions made",
        labels=LABELS,
    )
    retired = CounterMetricFamily("imsrep_policy_copies_retired", "Copies the policy's runs retired", labels=LABELS)
    lag = GaugeMetricFamily(
        "imsrep_policy_lag_seconds",
        "Age of the oldest image the latest run selected that had no copy, at the run's start (0: none)",
        labels=LABELS,
    )
    for status in data.policy_statuses(data.policies.every()):
        policy = [status.policy.id]
        runs.add_metric(policy, status.policy.runs)
        made.add_metric(policy, status.made)
        received.add_metric(policy, status.received)
        retired.add_metric(policy, status.retired)
        if status.policy.next_run_at is not None:
            next_run.add_metric(policy, status.policy.next_run_at)
        if status.last is not None and (current := status.outcome) is not None:
            last_run.add_metric(policy, status.last.at)
            outcome.add_metric(policy, {o.value: o is current for o in Outcome})
        if (seconds := status.lag) is not None:
            lag.add_metric(policy, seconds)
    return [runs, last_run, next_run, outcome, made, received, retired, lag]
