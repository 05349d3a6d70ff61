"""The worker's Redis transports: a torn-down connection is a connection error, which Celery recovers from; Redis
refusing writes (its memory limit) neither kills the worker nor loses a message; a dropped connection leaves the
event loop, and an ack that cannot reach Redis frees its place; the Sentinel channel has the same fixes."""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kombu
import pytest
from kombu import Connection, Exchange
from kombu import Queue as KombuQueue
from kombu.asynchronous import Hub
from kombu.exceptions import OperationalError
from kombu.transport import get_transport_cls
from kombu.transport import redis as kombu_redis
from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError
from redis.retry import Retry

from cli.processes import free_port, wait_until
from cli.stack import LocalStack, StackOptions
from config.celery import SENTINEL_TRANSPORT, TRANSPORT
from tests.support import password_url
from worker.broker import Channel, QoS, SentinelChannel, SentinelTransport
from worker.data import unavailable
from worker.data.keyspace import Keyspace
from worker.queues import TAKEN_FIRST


def test_the_password_outlives_a_switch_to_the_next_sentinel() -> None:
    # After a failed connection kombu re-reads the next Sentinel's URL, which holds no password (it travels apart):
    # the new master then refused every command of a worker, and of the API's enqueuer, after a failover.
    conn = Connection("sentinel://127.0.0.1:1;sentinel://127.0.0.1:2", password="broker-pw-1")
    conn.switch("sentinel://127.0.0.1:2")
    assert conn.password is None  # kombu's doing
    channel = SentinelChannel.__new__(SentinelChannel)
    channel.connection = SimpleNamespace(client=conn, default_port=26379)
    assert channel._connparams()["password"] == "broker-pw-1"


@pytest.mark.parametrize("connection", [SimpleNamespace(client=None), None])
def test_a_channel_of_a_torn_down_connection_raises_a_connection_error(connection: Any) -> None:
    # As left after Celery collected the connection (client None), or after kombu closed the channel on a
    # connection error while a task still published through it (None: an AttributeError lost that task's messages).
    channel = Channel.__new__(Channel)
    channel.connection = connection
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


# worker/broker.py overrides private methods of kombu's Redis channel and relies on its ``pool`` property; it
# was written against kombu 5.7 (pyproject.toml pins that minor). A kombu whose versions of them differ must be
# read again before it is allowed in: these digests are of their source in kombu 5.7.0.
KOMBU_SOURCES = {
    "Channel._create_client": "dae92bc4075dafb9b1a1ebd3f72cc7ed3e1bfe3ec1f840a1b1ccdfc6a67deb4d",
    "Channel._connparams": "e9a4295085a8fb905b44e81a935003affdc9e74298b779df4877ba575fbba196",
    "Channel.pool": "5a99b1533403c64dba7ef6612963e14c1e9ecad0fe45e4df481ed9b5debb0319",
    "Channel._size": "7cc839b42fdc5e3b8c777a15b44bc0b7bab001f3a11cc534e21b73f007d3af2a",
    "Channel._queue_bind": "29b73e023af67e47fc7b7d9d7ee3588f08d0fdd68ea670ca5b09bdf031bf9d64",
    "Channel._brpop_start": "06723d707ddf224025af70ff511e07a27e1e8a37ec509e7dfa11ee408a79ccec",
    "Channel._update_queue_cycle": "25de35faeae043a76e53489144649244a7c85bb3a2f82ec62d9b530b2ea18803",
    "MultiChannelPoller.on_poll_init": "0a605e782492713d5874cfb336178eda25d9acae4cf99e4a83f7dde08a5b7322",
    "SentinelChannel._sentinel_managed_pool": "bde54a2d6e93ac13b6a07900c75a7626a8d817bfdb22d8059325ac0f73a745bf",
    "QoS.append": "35c655f6ecc62fe6e9902f7498dde9b47ff27187973d7568e02529c400027416",
    "QoS.ack": "1bc15a4ddf541af6aede3b76093919f847899f93dd8c1a2537ab7eaff1227207",
    "QoS.reject": "747a02434344d1a6b27480e397a2c047add90085bf8284d420285ac0763ae262",
    "QoS.restore_visible": "d4a4a40a3eaf9f23ed3651a5c03602c80571bd30c49bf256f0b65fbd6dae3851",
    "QoS.restore_unacked": "8954efef014d546e047d213e437d5a27ad91b8288d6b90b4484addca86b3c6e2",
    "QoS.restore_by_tag": "58e161d81b6fe18d1fe73d53d13e6359271bcc249d0da58ee737c6775d51ceb8",
}


@pytest.mark.parametrize("name", KOMBU_SOURCES)
def test_the_kombu_internals_the_transport_overrides_are_the_ones_it_was_written_against(name: str) -> None:
    owner, attribute = name.split(".")
    member = inspect.getattr_static(getattr(kombu_redis, owner), attribute)
    source = inspect.getsource(member.fget if isinstance(member, property) else member)
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == KOMBU_SOURCES[name], (
        f"kombu {kombu.__version__} changed {name}, which worker/broker.py overrides or relies on: read the "
        f"new code, adapt worker/broker.py, then update this digest and the kombu pin in pyproject.toml"
    )


def test_kombu_is_the_pinned_minor() -> None:
    assert tuple(int(p) for p in kombu.__version__.split(".")[:2]) == (5, 7), kombu.__version__


def test_a_switch_to_the_next_sentinel_keeps_the_fixed_transport() -> None:
    conn = Connection("sentinel://127.0.0.1:1;sentinel://127.0.0.1:2/0", transport=SENTINEL_TRANSPORT)
    assert get_transport_cls(conn.transport_cls) is SentinelTransport
    conn.maybe_switch_next()  # what kombu does after a failed connection: the next URL, its scheme's transport
    assert conn.port == 2 and get_transport_cls(conn.transport_cls) is SentinelTransport


def test_the_sentinel_channel_has_the_same_fixes() -> None:
    channel = SentinelChannel.__new__(SentinelChannel)
    channel.connection = SimpleNamespace(client=None)
    with pytest.raises(RedisConnectionError):  # before it asks any Sentinel for the master
        channel._sentinel_managed_pool()
    assert SentinelChannel.QoS is QoS and Channel.QoS is QoS


# -- Redis at its memory limit (noeviction): every command queued in a MULTI is refused, deletions included. -------


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[tuple[Redis, Connection]]:
    """A Redis of this test's own, and a kombu connection to it through the worker's transport."""
    with LocalStack(StackOptions(state_dir=tmp_path)) as stack:
        stack.start_redis()
        url = password_url(stack)
        conn = Connection(url, transport=TRANSPORT, transport_options={"visibility_timeout": 1})
        try:
            yield Redis.from_url(url, decode_responses=True), conn
        finally:
            conn.release()


def test_a_worker_waits_for_messages_on_the_stage_queues_only(full_redis) -> None:
    # The pools' waiting lines are consumed so that Flower lists them, but never hold a message: BRPOP leaves them
    # out (400 of them with 200 accounts made each BRPOP cost Redis about 140 us).
    r, conn = full_redis
    waiting = Keyspace().waiting_queue("a000")
    channel = conn.default_channel
    received: list[Any] = []
    queues = [KombuQueue(name) for name in ("submit", waiting, "poll")]
    consumer = kombu.Consumer(channel, queues, callbacks=[lambda body, message: received.append(body)], no_ack=True)
    consumer.consume()
    assert channel._queue_cycle.consume(len(channel.active_queues)) == ["submit", "poll"]
    with conn.Producer() as producer:
        producer.publish({"n": 1}, routing_key="poll")
    conn.drain_events(timeout=5)
    assert received == [{"n": 1}]
    r.rpush(Keyspace().waiting("a000"), "item")  # a waiting item, as the slot pool records it: never taken
    with pytest.raises(TimeoutError):
        conn.drain_events(timeout=1.5)
    assert r.llen(Keyspace().waiting("a000")) == 1


def test_a_worker_takes_what_keeps_slots_busy_before_validation(full_redis) -> None:
    _, conn = full_redis
    received: list[str] = []
    names = ["admit", "validate", "followup", "maintenance", "poll", "submit"]
    with conn.Producer() as producer:
        for name in names:  # sent in the opposite order to the one they are taken in
            producer.publish({"queue": name}, routing_key=name, declare=[KombuQueue(name)])
    consumer = kombu.Consumer(
        conn.default_channel,
        [KombuQueue(name) for name in names],
        callbacks=[lambda body, message: received.append(body["queue"])],
        no_ack=True,
    )
    consumer.consume()
    for _ in names:
        conn.drain_events(timeout=5)
    assert received == [queue.value for queue in TAKEN_FIRST]


def _deliver(conn: Connection) -> Any:
    """Publish one message to ``q`` and take it, as a consumer does (recorded as unacked)."""
    with conn.Producer() as producer:
        producer.publish({"n": 1}, routing_key="q", declare=[KombuQueue("q")])
    return conn.default_channel.basic_get("q")


def _refuse_writes(r: Redis) -> None:
    r.config_set("maxmemory", 1)  # below what is used: every write (and every MULTI) is refused with OOM


def _unacked(r: Redis) -> int:
    return r.hlen("unacked") + r.zcard("unacked_index")


def test_a_message_taken_while_redis_refuses_writes_waits_and_is_kept(full_redis) -> None:
    r, conn = full_redis
    with conn.Producer() as producer:
        producer.publish({"n": 1}, routing_key="q", declare=[KombuQueue("q")])
    channel = conn.default_channel
    _refuse_writes(r)
    lifted = threading.Timer(1.0, lambda: r.config_set("maxmemory", 0))
    lifted.start()
    started = time.monotonic()
    message = channel.basic_get("q")  # popped, then recorded as unacked only once Redis takes writes again
    lifted.join()
    assert message is not None and message.payload == {"n": 1}
    assert time.monotonic() - started >= 0.9 and _unacked(r) == 2
    message.ack()
    assert _unacked(r) == 0 and r.llen("q") == 0


def test_an_ack_while_redis_refuses_writes_still_removes_the_message(full_redis) -> None:
    r, conn = full_redis
    message = _deliver(conn)
    _refuse_writes(r)
    message.ack()  # kombu's MULTI is refused; the deletions alone are allowed at the memory limit
    assert _unacked(r) == 0


@pytest.mark.parametrize("settle", ["ack", "requeue"])
def test_an_ack_that_cannot_reach_redis_leaves_the_message_for_the_sweep_and_frees_its_place(
    full_redis, settle: str
) -> None:
    # Celery logs a failed ack and never tries again: the tag held a place of the prefetch window for as long as the
    # channel lived (with a prefetch of 4, four failed acks and the worker would take no message again).
    r, conn = full_redis
    channel = conn.default_channel
    channel.basic_qos(prefetch_count=1)
    message = _deliver(conn)
    assert not channel.qos.can_consume()
    # Redis out of reach, as in a failover: the channel's commands go to a port nothing listens on.
    channel._pool = ConnectionPool(port=free_port(), retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)
    with pytest.raises(RedisConnectionError):
        message.ack() if settle == "ack" else message.reject(requeue=True)
    assert channel.qos.can_consume() and _unacked(r) == 2


def test_a_requeue_while_redis_refuses_writes_leaves_the_message_for_the_sweep(full_redis) -> None:
    r, conn = full_redis
    message = _deliver(conn)
    _refuse_writes(r)
    message.reject(requeue=True)  # cannot be pushed back now: it stays in the unacked hash
    conn.default_channel.qos.restore_visible(num=10, interval=1)  # a sweep while still refused: no error
    assert _unacked(r) == 2 and r.llen("q") == 0
    r.config_set("maxmemory", 0)
    wait_until(lambda: conn.default_channel.qos.restore_visible(num=10, interval=1) or r.llen("q") == 1, 10, "sweep")
    assert _unacked(r) == 0 and conn.default_channel.basic_get("q", no_ack=True).payload == {"n": 1}


# -- The event loop's epoll and a pool process's copy of a socket ---------------------------------------------------


def _polled_inodes(hub: Hub) -> set[int]:
    """The files (socket inodes) the hub's epoll watches, as the kernel lists them (``tfd ... ino:<hex>``)."""
    info = Path(f"/proc/self/fdinfo/{hub.poller._epoll.fileno()}").read_text()
    return {int(ino, 16) for ino in re.findall(r"^tfd:.*\bino:([0-9a-f]+)", info, re.MULTILINE)}


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir() or not hasattr(select, "epoll"), reason="Linux epoll")
def test_a_dropped_connection_leaves_the_event_loop_though_a_pool_process_holds_its_socket(full_redis) -> None:
    # A pool process forked while a socket is open holds it too (a dup here), and epoll forgets a socket only while
    # its number is open: kombu took it out after closing it, so epoll kept reporting it, hung up, under a number a
    # new connection then got, and the worker's main loop blocked reading that pub/sub connection (worker/broker.py).
    _, conn = full_redis
    received: list[Any] = []
    channel = conn.default_channel
    queues = [KombuQueue("q"), KombuQueue("bcast", Exchange("bcast", type="fanout"))]
    kombu.Consumer(channel, queues, callbacks=[lambda body, message: received.append(body)], no_ack=True).consume()
    hub = Hub()
    conn.transport.register_with_event_loop(conn.connection, hub)
    hub.run_once()  # sends BRPOP and SUBSCRIBE: both sockets are in epoll now
    sockets = {"BRPOP": channel.client.connection._sock, "pub/sub": channel.subclient.connection._sock}
    held = {name: os.dup(sock.fileno()) for name, sock in sockets.items()}
    try:
        inodes = {name: os.fstat(fd).st_ino for name, fd in held.items()}
        assert set(inodes.values()) <= _polled_inodes(hub)
        channel.client.connection.disconnect()
        channel.subclient.connection.disconnect()
        assert not set(inodes.values()) & _polled_inodes(hub), inodes
        with conn.Producer() as producer:  # and the loop goes on, on new connections
            producer.publish({"n": 1}, routing_key="q")
        wait_until(lambda: hub.run_once() or received == [{"n": 1}], 10, "the message on a new connection")
    finally:
        for fd in held.values():
            os.close(fd)
        hub.close()


def test_refusals_are_told_from_mistakes_wherever_redis_reports_them() -> None:
    script = ResponseError(
        "Error running script (call to f_6eee): @user_script:24: @user_script: 24: -OOM command not allowed when used "
        "memory > 'maxmemory'."
    )
    assert unavailable(OutOfMemoryError("command not allowed when used memory > 'maxmemory'."))
    assert unavailable(script)  # a refusal met inside one of our Lua scripts
    wrapped = OperationalError("Command # 1 (LLEN submit) of pipeline caused error")
    wrapped.__cause__ = OutOfMemoryError("command not allowed")
    assert unavailable(wrapped)  # kombu re-raises Redis's errors as its own
    assert not unavailable(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))
    assert not unavailable(ValueError("a bug"))
