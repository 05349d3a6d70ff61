"""Copy-duration forecasts: least squares over finished copies, the mean when sizes do not differ."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from worker.data.accounts import DURATION_SAMPLES
from worker.ims.models import Job
from worker.steps import forecast

GIB = 1024**3


def test_a_line_through_sizes_and_durations() -> None:
    samples = [(1 * GIB, 3.0), (2 * GIB, 5.0), (4 * GIB, 9.0)]  # 1 s + 2 s per GiB
    assert forecast.duration(samples, 8 * GIB) == pytest.approx(17.0)


def test_alike_sizes_or_unknown_size_give_the_mean() -> None:
    samples = [(2 * GIB, 58.0), (2 * GIB, 62.0)]
    assert forecast.duration(samples, 8 * GIB) == pytest.approx(60.0)
    assert forecast.duration([(GIB, 3.0), (2 * GIB, 5.0)], None) == pytest.approx(4.0)


def test_a_negative_slope_is_noise() -> None:
    assert forecast.duration([(GIB, 9.0), (4 * GIB, 3.0)], 8 * GIB) == pytest.approx(6.0)


def _job(seconds: float) -> Job:
    begin = datetime(2024, 11, 6, 6, 14, 27, tzinfo=timezone.utc)
    return Job(status="SUCCESS", begin_time=begin, end_time=begin + timedelta(seconds=seconds))


def test_recorded_jobs_predict_the_next(ctx) -> None:
    assert forecast.predict(ctx, "default", GIB) is None
    for n in range(DURATION_SAMPLES + 5):
        forecast.record(ctx, "default", GIB, _job(10.0 + n % 2))
    forecast.record(ctx, "default", None, _job(99.0))  # no size: not a sample
    assert forecast.predict(ctx, "default", GIB) == pytest.approx(10.5)
    assert len(ctx.data.accounts.durations("default")) == DURATION_SAMPLES


def test_how_far_past_the_estimate_the_pools_copies_ran(ctx) -> None:
    for _ in range(4):
        forecast.record(ctx, "default", GIB, _job(10.0))
    assert forecast.forecast(ctx, "default", GIB) == forecast.Forecast(10.0, 0.0)  # all kept to it
    forecast.record(ctx, "default", GIB, _job(15.0))
    expected = forecast.forecast(ctx, "default", GIB)
    assert expected is not None and expected.seconds == pytest.approx(11.0)
    assert expected.late == pytest.approx(15.0 / 11.0 - 1)  # the 15 s copy, against the 11 s estimate
