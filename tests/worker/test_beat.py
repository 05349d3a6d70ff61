"""Beat's scheduler: one beat sends the schedule cluster-wide (a lock), every beat writes a heartbeat, and a standby
takes over when the sender stops."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from cli.processes import wait_until
from config.celery import celery_config
from config.settings import get_settings
from worker.beat import REFUSED_RETRY, Scheduler

QUEUE = "beat-test"


@pytest.fixture
def app(redis_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Celery]:
    prefix = f"b{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("IMSREP_REDIS_URL", redis_server.url.rsplit("/", 1)[0] + "/7")
    monkeypatch.setenv("IMSREP_KEY_PREFIX", prefix)
    get_settings.cache_clear()
    settings = get_settings()
    celery = Celery("beat-test", set_as_current=False)
    celery.conf.update(celery_config(settings))
    celery.conf.beat_schedule = {"ping": {"task": "t.ping", "schedule": 0.01, "options": {"queue": QUEUE}}}
    yield celery
    celery.close()
    get_settings.cache_clear()


def _scheduler(app: Celery, tmp_path: Path, name: str) -> Scheduler:
    return Scheduler(app=app, schedule_filename=str(tmp_path / f"{name}-schedule"), lazy=False)


def test_one_beat_sends_the_other_stands_by_and_takes_over(app: Celery, redis_server, tmp_path: Path) -> None:
    queue = redis.Redis.from_url(get_settings().redis_url, decode_responses=True)
    queue.delete(QUEUE)
    first, second = _scheduler(app, tmp_path, "first"), _scheduler(app, tmp_path, "second")
    data = first._data
    try:
        wait_until(lambda: first.tick() is not None and queue.llen(QUEUE) >= 1, 10, "the first beat to send")
        sent = queue.llen(QUEUE)
        for _ in range(5):
            second.tick()
        assert queue.llen(QUEUE) == sent  # the standby sent nothing
        assert data.telemetry.beats_seen(since=0) == 2  # both tick: both are seen alive

        first.close()  # the sender stops: its lock is released and its heartbeat forgotten
        wait_until(lambda: second.tick() is not None and queue.llen(QUEUE) > sent, 10, "the standby to take over")
        assert data.telemetry.beats_seen(since=0) == 1
    finally:
        second.close()
        queue.delete(QUEUE)


def test_while_redis_refuses_beat_asks_again_within_a_second(
    app: Celery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beat = _scheduler(app, tmp_path, "refused")
    try:

        def refused(*_: object) -> None:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        with monkeypatch.context() as patch:
            patch.setattr(beat._data.telemetry, "beat_heartbeat", refused)
            assert beat.tick() == REFUSED_RETRY < beat.max_interval
        assert beat.tick() is not None  # Redis back: ticking as usual
    finally:
        beat.close()
