"""The worker's Redis transport: a torn-down connection is a connection error, which Celery recovers from."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from redis import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from worker.broker import Channel


def test_a_channel_of_a_torn_down_connection_raises_a_connection_error() -> None:
    channel = Channel.__new__(Channel)  # as left after Celery collected the connection
    channel.connection = SimpleNamespace(client=None)
    with pytest.raises(RedisConnectionError):
        channel._connparams()


def test_a_channel_reuses_its_client_until_its_pool_is_replaced() -> None:
    channel = Channel.__new__(Channel)
    channel.connection = SimpleNamespace(client=SimpleNamespace(transport_options={}))
    channel.Client = Redis
    channel._pool = ConnectionPool()
    first = channel._create_client()
    assert channel._create_client() is first
    channel._pool = ConnectionPool()  # as after a fork or a lost connection
    second = channel._create_client()
    assert second is not first and second.connection_pool is channel._pool
