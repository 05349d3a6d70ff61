"""How long a pool's copies take, learned from its finished jobs, so a poll can be due when a job should end. A pool
(``worker.domain.pools``) is an account's in-region or cross-region copies: the two kinds take different times.

Durations come from IMS's own ``begin_time``/``end_time`` (one clock, whatever our clocks say); sizes from
validation (``__image_size``). A least-squares line ``seconds = a + b * bytes`` over the pool's latest copies
(``worker.data.accounts``) predicts a new copy; with too little spread in the sizes (or a slope that makes no
sense) the mean duration does. How far the latest copies ran past that estimate says how precise it is: a poll
aims that far past the predicted end (``worker.steps.poll``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from worker.ims.models import Job
from worker.steps.context import StepContext


def record(ctx: StepContext, pool: str, size: int | None, job: Job) -> None:
    """Remember a successful job's duration (IMS's times; nothing when it gave none)."""
    if size is None or job.begin_time is None or job.end_time is None:
        return
    seconds = (job.end_time - job.begin_time).total_seconds()
    if seconds > 0:
        ctx.data.accounts.record_duration(pool, size, seconds)


@dataclass(frozen=True)
class Forecast:
    seconds: float  # a new copy's expected duration
    late: float  # the largest share by which one of the latest copies ran past its own estimate (0 if none did)


def predict(ctx: StepContext, pool: str, size: int | None) -> float | None:
    """Expected seconds for a copy of ``size`` bytes in this pool; None before any copy of it has finished."""
    samples = ctx.data.accounts.durations(pool)
    return duration(samples, size) if samples else None


def forecast(ctx: StepContext, pool: str, size: int | None) -> Forecast | None:
    """The expected duration and how far past such estimates the pool's copies have run: a poll aimed that far
    past the end finds such a copy done. None before any copy of the pool has finished."""
    samples = ctx.data.accounts.durations(pool)
    if not samples:
        return None
    estimate = _fit(samples)
    return Forecast(estimate(size), max(0.0, *(seconds / estimate(x) - 1 for x, seconds in samples)))


def duration(samples: Sequence[tuple[float, float]], size: int | None) -> float:
    """The least-squares estimate at ``size`` from (bytes, seconds) samples; their mean when that cannot be had."""
    return _fit(samples)(size)


def _fit(samples: Sequence[tuple[float, float]]) -> Callable[[float | None], float]:
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var = sum((x - mean_x) ** 2 for x, _ in samples)
    if var <= (0.01 * mean_x) ** 2 * n:  # sizes (nearly) all alike: nothing to scale by
        return lambda _size: mean_y
    slope = sum((x - mean_x) * (y - mean_y) for x, y in samples) / var
    if slope < 0:  # bigger copies do not finish sooner: noise, not a model
        return lambda _size: mean_y
    shortest = min(y for _, y in samples)
    return lambda size: mean_y if size is None else max(mean_y + slope * (size - mean_x), shortest)
