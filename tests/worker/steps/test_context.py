"""StepContext.each: work that mostly waits on the cloud, side by side on the step threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from config.settings import load_settings
from worker.steps import StepContext


def _context(parallel: ThreadPoolExecutor | None) -> StepContext:
    return StepContext(settings=load_settings(demo=True), data=None, clients=None, parallel=parallel)  # type: ignore[arg-type]


def test_each_runs_side_by_side_and_answers_in_order() -> None:
    barrier = threading.Barrier(3, timeout=10)  # in turn, the first would wait for the others until the timeout

    def look(n: int) -> int:
        barrier.wait()
        return n * 10

    with ThreadPoolExecutor(3) as pool:
        assert _context(pool).each(look, [1, 2, 3]) == [10, 20, 30]
    assert _context(None).each(lambda n: n + 1, [1, 2]) == [2, 3]  # no step threads: in turn


def test_each_raises_the_first_failure_after_all_have_ended() -> None:
    ended: list[int] = []

    def look(n: int) -> int:
        if n == 1:
            raise ValueError("refused")
        ended.append(n)
        return n

    with ThreadPoolExecutor(3) as pool, pytest.raises(ValueError, match="refused"):
        _context(pool).each(look, [1, 2, 3])
    assert sorted(ended) == [2, 3]
