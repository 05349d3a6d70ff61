"""Figures from what the simulator and the API recorded: utilisation, latencies, calls, percentiles.

Pure functions over plain records, so a figure can be checked by hand: ``jobs`` are ``/_sim/jobs`` records
(``begin``/``end`` in epoch seconds, ``project_id``, ``status``), ``items`` are the API's item records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linearly interpolated; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def utilisation(jobs: Sequence[dict[str, Any]], slots: int) -> float:
    """Busy slot-seconds over available slot-seconds, from the first job's start to the last job's end."""
    if not jobs:
        return float("nan")
    busy = sum(job["end"] - job["begin"] for job in jobs)
    makespan = max(job["end"] for job in jobs) - min(job["begin"] for job in jobs)
    return busy / (slots * makespan) if makespan > 0 else float("nan")


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def completion_latencies(jobs: Iterable[dict[str, Any]], items: Iterable[dict[str, Any]]) -> list[float]:
    """Seconds from each successful IMS job's end to its item becoming ``succeeded``."""
    done = {item["job_id"]: epoch(item["updated_at"]) for item in items if item["state"] == "succeeded"}
    return [done[job["job_id"]] - job["end"] for job in jobs if job["job_id"] in done]


def handoff_gaps(jobs: Sequence[dict[str, Any]], slots: int) -> list[float]:
    """Seconds a slot stood idle: from an IMS job's end in the project to the next copy call there (the next job's
    begin), the poll that sees the end and the submit it frees included.

    A slot is free for IMS as soon as its job ends, so the k-th end lets the (slots + k)-th job begin.
    """
    ends = sorted(job["end"] for job in jobs)
    begins = sorted(job["begin"] for job in jobs)
    return [begin - end for begin, end in zip(begins[slots:], ends, strict=False)]


def idle_shares(jobs: Sequence[dict[str, Any]], slots: int) -> tuple[float, float, float]:
    """Where the projects' slots stood idle over the jobs' phase (the first job's start to the last one's end), as
    shares of every slot's time (``slots`` per project, the projects those of ``jobs``): before each slot's first
    copy (the ramp), between its copies (``handoff_gaps``), after its last one (the tail). Utilisation is 1 less
    their sum when every job takes its own slot."""
    if not jobs:
        return float("nan"), float("nan"), float("nan")
    start, end = min(job["begin"] for job in jobs), max(job["end"] for job in jobs)
    ramp = handoffs = tail = 0.0
    for project in {job["project_id"] for job in jobs}:
        own = [job for job in jobs if job["project_id"] == project]
        ramp += sum(begin - start for begin in sorted(job["begin"] for job in own)[:slots])
        handoffs += sum(handoff_gaps(own, slots))
        tail += sum(end - last for last in sorted(job["end"] for job in own)[-slots:])
    total = slots * len({job["project_id"] for job in jobs}) * (end - start)
    return ramp / total, handoffs / total, tail / total


def idle_note(jobs: Sequence[dict[str, Any]], slots: int) -> str:
    """``idle_shares`` as a utilisation figure's note."""
    ramp, handoffs, tail = idle_shares(jobs, slots)
    return f"ramp {ramp:.3f}, hand-offs {handoffs:.3f}, tail {tail:.3f} of the slots' time"


def calls(stats: dict[str, Any], project_id: str) -> int:
    """Every call the simulator answered for the project, whatever its status (429s included)."""
    endpoints = stats["by_project"].get(project_id, {})
    return sum(sum(statuses.values()) for statuses in endpoints.values())


def calls_between(before: dict[str, Any], after: dict[str, Any], project_id: str) -> int:
    return calls(after, project_id) - calls(before, project_id)


def endpoint_calls_between(before: dict[str, Any], after: dict[str, Any], project_ids: list[str]) -> dict[str, int]:
    """The projects' calls by endpoint, whatever their status."""
    counts: Counter[str] = Counter()
    for stats, sign in ((after, 1), (before, -1)):
        for project_id in project_ids:
            for endpoint, statuses in stats["by_project"].get(project_id, {}).items():
                counts[endpoint] += sign * sum(statuses.values())
    return {endpoint: n for endpoint, n in sorted(counts.items()) if n}


def per_item(endpoints: dict[str, int], items: int) -> str:
    """Calls by endpoint (``endpoint_calls_between``) per item, as a figure's note."""
    return "per item: " + ", ".join(f"{endpoint} {n / max(items, 1):.2f}" for endpoint, n in endpoints.items())
