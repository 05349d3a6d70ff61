"""The worker's Redis transport: a torn-down connection is a connection error, which Celery recovers from."""

from __future__ import annotations

import hashlib
import inspect
from types import SimpleNamespace

import kombu
import pytest
from kombu.transport import redis as kombu_redis
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


# worker/broker.py overrides two private methods of kombu's Redis channel and relies on its ``pool`` property; it
# was written against kombu 5.7 (pyproject.toml pins that minor). A kombu whose versions of them differ must be
# read again before it is allowed in: these digests are of their source in kombu 5.7.0.
KOMBU_SOURCES = {
    "_create_client": "dae92bc4075dafb9b1a1ebd3f72cc7ed3e1bfe3ec1f840a1b1ccdfc6a67deb4d",
    "_connparams": "e9a4295085a8fb905b44e81a935003affdc9e74298b779df4877ba575fbba196",
    "pool": "5a99b1533403c64dba7ef6612963e14c1e9ecad0fe45e4df481ed9b5debb0319",
}


@pytest.mark.parametrize("name", KOMBU_SOURCES)
def test_the_kombu_internals_the_transport_overrides_are_the_ones_it_was_written_against(name: str) -> None:
    member = inspect.getattr_static(kombu_redis.Channel, name)
    source = inspect.getsource(member.fget if isinstance(member, property) else member)
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == KOMBU_SOURCES[name], (
        f"kombu {kombu.__version__} changed Channel.{name}, which worker/broker.py overrides or relies on: read the "
        f"new code, adapt worker/broker.py, then update this digest and the kombu pin in pyproject.toml"
    )


def test_kombu_is_the_pinned_minor() -> None:
    assert tuple(int(p) for p in kombu.__version__.split(".")[:2]) == (5, 7), kombu.__version__
