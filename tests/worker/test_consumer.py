"""The worker's consumer asks for a lost broker again within 2 s, not kombu's 30 s."""

from __future__ import annotations

from typing import Any

from worker.celery_app import app
from worker.consumer import RETRY_START, RETRY_STEP, Consumer


class _Connection:
    def __init__(self) -> None:
        self.asked: dict[str, Any] = {}

    def ensure_connection(self, errback: Any, max_retries: Any, **options: Any) -> _Connection:
        self.asked = {"max_retries": max_retries, **options}
        return self


def test_the_worker_uses_this_consumer() -> None:
    assert app.conf.worker_consumer == "worker.consumer:Consumer"


def test_a_lost_broker_is_asked_for_again_at_most_two_seconds_apart() -> None:
    consumer = Consumer.__new__(Consumer)  # what ensure_connected reads of a consumer; the rest needs a worker
    consumer.app, consumer.first_connection_attempt, consumer.broker_connection_retry_attempt = app, False, 0
    connection = _Connection()
    assert consumer.ensure_connected(connection) is connection
    asked = connection.asked
    assert asked["max_retries"] is None  # for ever (broker_connection_max_retries)
    # kombu sleeps start, start + step, ... up to max between rounds over the URL's hosts (retry_over_time)
    assert (asked["interval_start"], asked["interval_step"], asked["interval_max"]) == (RETRY_START, RETRY_STEP, 2.0)
