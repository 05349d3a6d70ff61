"""Control: noticing that the Redis server process is another than the one met before (a failover, a restart)."""

from __future__ import annotations

from worker.data import DataLayer

OTHER_RUN_ID = "0" * 40  # a run_id no live server has


def _as_if_another_server_was_met_before(redis_server, data: DataLayer) -> None:
    redis_server.client().hset(data.keys.primary(), "run_id", OTHER_RUN_ID)


def test_the_first_server_met_replaced_nothing(redis_server) -> None:
    data = redis_server.data()
    assert data.control.replaced_at(100.0) == 0.0
    assert data.control.replaced_at(200.0) == 0.0


def test_a_new_server_process_is_noticed_once_and_remembered(redis_server) -> None:
    data = redis_server.data()
    data.control.replaced_at(100.0)
    _as_if_another_server_was_met_before(redis_server, data)
    assert data.control.replaced_at(300.0) == 300.0
    assert data.control.replaced_at(400.0) == 300.0  # the same server since
    assert redis_server.client().hget(data.keys.primary(), "run_id") == redis_server.client().info("server")["run_id"]
