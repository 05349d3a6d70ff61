"""The worker's Redis transport: a torn-down connection is a connection error, which Celery recovers from."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from worker.broker import Channel


def test_a_channel_of_a_torn_down_connection_raises_a_connection_error() -> None:
    channel = Channel.__new__(Channel)  # as left after Celery collected the connection
    channel.connection = SimpleNamespace(client=None)
    with pytest.raises(RedisConnectionError):
        channel._connparams()
