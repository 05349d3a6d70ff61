"""The Redis broker transports the worker, beat, the API and Flower use: kombu's (one Redis server, or the master
Sentinel names), with fixes so that a Redis restart, a failover or Redis refusing writes does not kill the worker
or lose a message, and one saving.

**A Redis restart or failover.** When the broker connection drops, Celery 5.7 first ``collect()``s the connection
(which detaches the transport from its ``Connection``) and then closes it; closing the channel tries to hand the
worker's unacked messages back to Redis, which needs a fresh connection pool built from that now-missing
``Connection``, and the resulting ``AttributeError`` ('NoneType' object has no attribute 'hostname') is not a
connection error, so it escapes and the worker exits with "Unrecoverable error". Here that case raises a connection
error instead: Celery ignores it and reconnects (through Sentinel, to whichever server is master now), and the
messages, still in Redis's unacked hash, come back with the visibility-timeout sweep. The Sentinel channel needs the
same fix: it builds its pool from the same connection parameters.

**Redis refusing writes** (at its memory limit under ``noeviction``, a replica answering READONLY mid-failover,
MASTERDOWN): Redis refuses every command queued in a MULTI then, deletions included. kombu records a delivered
message as unacked with one such transaction, acks with another and restores with a third, and an error from any
of them is not a connection error, so the worker died ("Unrecoverable error: OutOfMemoryError") and the message it
had just popped was gone. Here (``QoS``):

- a delivered message is recorded as unacked before it is handed on, waiting with backoff while Redis refuses (the
  worker takes no other message meanwhile; on shutdown it gives up, and the reconciler resends the step);
- an ack that meets the refusal drops the unacked entry without MULTI (deletions are allowed at the memory limit),
  else leaves it: the message comes back after the visibility timeout, and every step is idempotent (so does one
  that cannot reach Redis; either way the worker is done with it and takes the next);
- a requeue (``Reject(requeue=True)``, what a task does when Redis refuses its step's writes) or a restore that
  meets the refusal leaves the message in the unacked hash, where the visibility-timeout sweep finds it once Redis
  takes writes again;
- declaring a queue (a worker starting while Redis is full, a control command's reply queue) waits, rather than
  restarting the consumer several times a second, and reads its length without MULTI.

Each episode is logged once when it starts and once when it ends (``worker.pressure``).

**A connection dropped while a pool process holds a copy of its socket**: kombu takes a dropped connection's socket
out of the event loop's epoll only after redis-py has closed it, by its number, which epoll no longer accepts then. A
pool process forked while the socket was open still holds it, so epoll kept it, hung up and readable for good, under
its old number: once a new connection got that number, the loop read the new one whenever the old one "was
readable", and the pub/sub connection, which kombu reads with no timeout, blocked the worker's main process until
something was published there. A worker stopped taking and acking messages, its heartbeats and time limits with them,
after a Sentinel failover (minutes, in the failover tier; for good when nothing was published). Here the socket
leaves epoll before it is closed (``_polled_connection``).

**Sentinel**: ``SentinelTransport`` has the same fixes, stays in use after kombu switches to another Sentinel of
the URL (see the end of this module), and its connections leave a master that Sentinel no longer names
(``FollowingConnection``).

**The savings**: a worker subscribes to every pool's waiting line as a queue, so that Flower lists it
(``worker.celery_app``), but no message ever goes there; kombu's BRPOP named them all each time, 400 keys with 200
accounts, which Redis answered in about 140 us instead of 10 and the worker spent a tenth of its main process's CPU
packing. ``MessageQueues`` leaves them out of it. And kombu builds a new ``redis.Redis`` client object around the
channel's connection pool for every publish, ack and event (each builds a table of 164 response callbacks: about
50 us of CPU), several times per task in the worker's main process and in every pool process. The client holds
nothing but the pool, so one is kept per pool and built again only when kombu replaces the pool (after a fork or a
lost connection).

**The order queues are taken in**: ``MessageQueues`` also names the stage queues in ``worker.queues.TAKEN_FIRST``
order, not in turn (kombu's default), so that slot hand-offs never wait behind a big batch's validation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.scheduling import priority_cycle
from redis.exceptions import ConnectionError as RedisConnectionError

from worker.data import unavailable
from worker.data.connection import FollowingConnection, FollowingSSLConnection
from worker.data.keyspace import WAITING_QUEUE_MARK
from worker.pressure import REFUSALS, backoff
from worker.queues import taken_rank


def _stopping() -> bool:
    from celery.worker import state  # noqa: PLC0415 - only a worker ever waits here

    return bool(state.should_stop or state.should_terminate)


def _while_refused(call: Callable[[], Any], what: str) -> Any:
    """``call()``, waiting with backoff while Redis refuses writes (one log line per episode), unless stopping."""
    attempt = 0
    while True:
        try:
            return call()
        except redis.ResponseError as exc:
            if not unavailable(exc) or _stopping():
                raise
            REFUSALS.refused(f"{what}; waiting", exc)
            attempt += 1
            time.sleep(backoff(attempt))


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: Any) -> None:
        """Record the delivered message as unacked; while Redis refuses, wait for it (the message is only in this
        process's memory now: handing it on unrecorded would lose it to a crash, dropping it would lose it now)."""
        append = super().append
        _while_refused(lambda: append(message, delivery_tag), "a delivered message could not be recorded as unacked")
        REFUSALS.accepted()

    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)
        except redis.ResponseError as exc:
            if not unavailable(exc):
                raise
            self._drop_without_multi(delivery_tag, exc)
            virtual.QoS.ack(self, delivery_tag)
        except (RedisConnectionError, redis.TimeoutError):
            # Redis out of reach (a failover): the message stays in the unacked hash and comes back with the sweep,
            # but here it is done with, or it would hold a place of the prefetch window for as long as this channel
            # lives (Celery logs the error and never acks again): with a prefetch of 4, four such acks and the worker
            # would take no message again.
            virtual.QoS.ack(self, delivery_tag)
            raise

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except redis.ResponseError as exc:
            if not unavailable(exc):
                raise
            if requeue:
                REFUSALS.refused("a message could not be requeued; it stays unacked until the sweep", exc)
            else:
                self._drop_without_multi(delivery_tag, exc)
            virtual.QoS.ack(self, delivery_tag)
        except (RedisConnectionError, redis.TimeoutError):
            virtual.QoS.ack(self, delivery_tag)  # as ``ack``: left for the sweep, its place in the window freed
            raise

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().restore_visible(*args, **kwargs)
        except redis.ResponseError as exc:
            if not unavailable(exc):
                raise
            REFUSALS.refused("unacked messages could not be restored; the next sweep tries again", exc)

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except redis.ResponseError as exc:
            if not unavailable(exc):
                raise
            # They stay in the unacked hash: the visibility-timeout sweep of any worker restores them.
            REFUSALS.refused("unacked messages were left for the sweep", exc)
            self._delivered.clear()

    def _drop_without_multi(self, delivery_tag: Any, refusal: Exception) -> None:
        try:
            with self.channel.conn_or_acquire() as client:
                pipe = client.pipeline(transaction=False)
                pipe.zrem(self.unacked_index_key, delivery_tag).hdel(self.unacked_key, delivery_tag).execute()
        except redis.ResponseError as exc:
            if not unavailable(exc):
                raise
            REFUSALS.refused("an ack was left undone; the message returns after the visibility timeout", refusal)


class MessageQueues(priority_cycle):
    """The queues a worker's BRPOP waits on, in ``worker.queues.TAKEN_FIRST`` order (Redis answers from the first
    that holds a message): those it consumes, less the pools' waiting lines, which never hold a message."""

    def update(self, it: Any) -> None:
        super().update(sorted((queue for queue in it if WAITING_QUEUE_MARK not in queue), key=taken_rank))


class _Fixes:
    """What both channels (one server, Sentinel) change in kombu's Redis channel."""

    QoS = QoS
    queue_order_strategy = f"{__name__}:MessageQueues"
    _sync_client: Any = None

    def _size(self, queue: str) -> int:
        """A queue's length (asked when it is declared): kombu reads it inside MULTI, which Redis refuses at its
        memory limit even for reads; the same reads without MULTI are allowed."""
        try:
            return super()._size(queue)  # type: ignore[misc]
        except redis.ResponseError as exc:
            if not unavailable(exc):
                raise
            with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
                pipe = client.pipeline(transaction=False)
                for priority in self.priority_steps:  # type: ignore[attr-defined]
                    pipe.llen(self._q_for_pri(queue, priority))  # type: ignore[attr-defined]
                return sum(int(n) for n in pipe.execute())

    def _queue_bind(self, *args: Any, **kwargs: Any) -> Any:
        """Declare a queue's binding (a worker starting, a control command's reply queue); while Redis refuses
        writes, wait rather than fail: failing restarts the consumer several times a second, each time logged."""
        bind = super()._queue_bind  # type: ignore[misc]
        return _while_refused(lambda: bind(*args, **kwargs), "queues could not be declared")

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:  # type: ignore[attr-defined]
            client = self._sync_client = super()._create_client()  # type: ignore[misc]
        return client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # Torn down: Celery collected the connection (client None), or kombu closed the channel after a connection
        # error (connection None) while a task still sent through it (a failover mid-task).
        client = None if self.connection is None else self.connection.client  # type: ignore[attr-defined]
        if client is None:
            raise RedisConnectionError("the broker connection was already torn down")
        params = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
        # After a failed connection kombu switches to the next Sentinel's URL and takes the password from it (none:
        # it travels apart, broker_password), so the new master refused every command; the password given is kept.
        if params.get("password") is None:
            params["password"] = client._initial_params.get("password")
        if asynchronous:  # the connections the event loop polls: BRPOP and pub/sub
            params["connection_class"] = _polled_connection(params["connection_class"], self)
        return params


def _polled_connection(base: type, channel: Any) -> type:
    """``base`` (kombu's connection class for the event loop) whose socket leaves the loop's epoll before it is
    closed: epoll forgets a socket only by a number still open, and a pool process forked meanwhile keeps the socket
    itself alive (the module's docstring)."""

    class Connection(base):  # type: ignore[misc, valid-type]
        def disconnect(self, *args: Any, **kwargs: Any) -> None:
            poller = getattr(getattr(channel.connection, "cycle", None), "poller", None)
            # A forked child shares the parent's epoll: only the process that made the connection touches it.
            if self._sock is not None and poller is not None and self.pid == os.getpid():
                poller.unregister(self._sock)
            super().disconnect(*args, **kwargs)

    return Connection


class Channel(_Fixes, kombu_redis.Channel):
    pass


class SentinelChannel(_Fixes, kombu_redis.SentinelChannel):
    # Leaves a master Sentinel no longer names (a partitioned one back before its demotion), rather than waiting
    # there for messages that go to the new master.
    connection_class = FollowingConnection
    connection_class_ssl = FollowingSSLConnection  # broker_use_ssl (TLS through Sentinel)


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


# A Sentinel URL lists several Sentinels, and after a failed connection kombu switches to the next one and resolves
# the transport again from that URL's scheme, dropping the one Celery was configured with: the worker went on with
# kombu's own, without the fixes above, and the next failover killed it ("Unrecoverable error: ... 'hostname'").
# In a process that uses these transports, the scheme names them.
TRANSPORT_ALIASES["sentinel"] = f"{__name__}:SentinelTransport"
