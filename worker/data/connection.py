"""The one way to a Redis client: every process (API, worker, beat, CLI, tests) connects with the same settings.

Replies are decoded to ``str``. Redis is one server, or the master that Sentinel names (``sentinel://`` in
``IMSREP_REDIS_URL``): a Sentinel-managed connection asks the Sentinels where the master is each time it connects,
and one that meets a demoted master (READONLY), or whose server Sentinel no longer names, drops and asks again.
Timeouts, TCP keepalive and the health check are explicit, so a dead or partitioned server is noticed in seconds
rather than when the kernel gives up on a socket; a command that meets a dropped connection is sent again twice,
shortly after. Every write the data layer makes is safe to send again (see ``RecordStore.create_batch``), so these
retries cannot store anything twice.

Redis replicates asynchronously: a write the master acknowledged can vanish in a failover. A write that must
outlive one (a batch before its 202, a copy attempt before the copy call) is confirmed: the
transaction and then ``WAIT <min_replicas>`` on the same connection (WAIT counts only that connection's writes),
and ``NotReplicated`` when fewer replicas confirm in time (``Durability``).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from config.celery import SENTINEL_RETRY, TCP_KEEPALIVE, sentinel_tls_options, tls_options
from config.settings import Settings, is_tls_url, redis_nodes

CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 5  # seconds a pooled connection may sit idle before it is PINGed on reuse
MASTER_CHECK_INTERVAL = 2.0  # seconds between a Sentinel-managed connection's checks that its server is still master
FAILOVER_PAUSE = 0.5  # seconds a connection waits before it asks again while the Sentinels call the master down
SENTINEL_RETRY_AFTER = 10.0  # seconds a Sentinel that did not answer is left out while enough others answer
_SENTINEL_FAILED: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()  # Sentinel client -> when


class NotReplicated(redis.RedisError):
    """A write reached the master but not ``wanted`` replicas within the timeout: it could vanish in a failover."""

    def __init__(self, acked: int, wanted: int) -> None:
        super().__init__(f"{acked} of {wanted} Redis replicas confirmed the write in time")
        self.acked = acked
        self.wanted = wanted


# Redis cannot take a write right now, but will again by itself: it is unreachable or stalled, loading its data,
# at its memory limit (noeviction), a replica (READONLY: a failover under way), or short of replicas.
UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    NotReplicated,
)
_UNAVAILABLE_CODES = ("MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "LOADING", "OOM", "READONLY")
# The same refusals met by a command inside a Lua script, which Redis reports as a script error.
_IN_SCRIPT = ("-OOM ", "-READONLY ", "-MASTERDOWN ", "-NOREPLICAS ")


def unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it wraps: kombu re-raises Redis's errors as its own) says Redis cannot take a write
    for now, rather than that a command was wrong."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, UNAVAILABLE):
            return True
        if isinstance(exc, redis.ResponseError):
            text = str(exc).split("caused error: ", 1)[-1]  # redis-py's prefix for a pipeline's command
            if text.startswith(_UNAVAILABLE_CODES) or any(code in text for code in _IN_SCRIPT):
                return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class MasterDown(MasterNotFoundError):
    """A majority of the Sentinels answered, and none names a master it can reach: the master is down in their view
    or a failover is under way (its replica may already be promoted)."""


def newest_master(sentinel: Sentinel, service: str) -> tuple[str, int]:
    """The master that the newest configuration among the Sentinels names (``MasterDown`` if a majority answered and
    none names a master it can reach).

    redis-py takes the first Sentinel's word, but a Sentinel learns of a failover another one led only from its
    hello messages (every 2 s): until then it still names the old master, healthy again once a partition heals, and
    for a moment such Sentinels can be the majority. So every Sentinel is asked and the configuration with the
    highest epoch wins, as it does among the Sentinels themselves. One that did not answer is left out for
    ``SENTINEL_RETRY_AFTER`` while a majority answers without it, so a hung one costs its timeout once in a while,
    not on every check.
    """
    now = time.monotonic()
    needed = len(sentinel.sentinels) // 2 + 1
    recent = [node for node in sentinel.sentinels if now - _SENTINEL_FAILED.get(node, -1e9) < SENTINEL_RETRY_AFTER]
    answered = 0
    newest: tuple[int, tuple[str, int]] | None = None
    for node in [node for node in sentinel.sentinels if node not in recent] + recent:
        if node in recent and answered >= needed:
            break
        try:
            state = node.sentinel_masters().get(service)
        except (RedisConnectionError, RedisTimeoutError):
            _SENTINEL_FAILED[node] = now
            continue
        answered += 1
        if state and sentinel.check_master_state(state, service):
            epoch = state.get("config-epoch", 0)
            if newest is None or epoch > newest[0]:
                newest = (epoch, (state["ip"], state["port"]))
    if newest is None:
        if answered >= needed:
            raise MasterDown(f"{answered} Sentinels answered and none names a master up for {service!r}")
        raise MasterNotFoundError(f"No master found for {service!r}: too few Sentinels answered")
    return newest[1]


class FollowingConnection(SentinelManagedConnection):
    """A connection to the master Sentinel names that leaves that server once Sentinel names another.

    A partitioned master that comes back after the failover still answers as master (Sentinel demotes it some 8 s
    later), and a connection made before the partition would go on writing to it what its demotion discards, or,
    the broker's, wait there for messages that now go to the new master. So before a command, at most every
    ``MASTER_CHECK_INTERVAL``, the connection asks the Sentinels (``newest_master``); if they name another master,
    or say theirs is down, it drops and raises a connection error, which the client's retry (or the broker's
    reconnect) follows to the master they name once they name one.
    """

    _master_checked = 0.0

    def _master(self) -> tuple[str, int]:
        pool = self.connection_pool  # redis-py's proxy of the pool
        pool.master_address = newest_master(pool.sentinel_manager, pool.service_name)
        return pool.master_address  # the pool keeps only connections to this address when they are released

    def _connect_retry(self) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self._master_checked = time.monotonic() + MASTER_CHECK_INTERVAL
            try:
                master = self._master()
            except MasterDown:
                # A failover takes a second or two once the Sentinels agree the master is down: spread the client's
                # few retries over it rather than spend them all at once and fail the command.
                time.sleep(FAILOVER_PAUSE)
                raise
            self.connect_to(master)
        else:
            super()._connect_retry()

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self.connection_pool.is_master:
            if self._sock is None:
                self.connect()  # through the Sentinels: redis-py's own reconnect here goes back to the last host
            elif time.monotonic() >= self._master_checked:
                self._check_master()
        super().send_packed_command(command, check_health)

    def _check_master(self) -> None:
        self._master_checked = time.monotonic() + MASTER_CHECK_INTERVAL
        try:
            master: tuple[str, int] | None = self._master()
        except MasterDown:
            master = None  # down in the Sentinels' view, its replica perhaps already promoted: write no more to it
        except MasterNotFoundError:
            return  # too few Sentinels answer to tell: carry on
        if master != (self.host, self.port):
            self.disconnect()
            raise RedisConnectionError(f"{self.host}:{self.port} is no longer the master Sentinel names")


class FollowingSSLConnection(FollowingConnection, SSLConnection):
    """``FollowingConnection`` over TLS, as redis-py's ``SentinelManagedSSLConnection`` is its own over TLS."""


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is and how to reach it: a URL (one server or Sentinels), the Sentinel master's name, the
    passwords, whether Sentinels and servers speak TLS (``sentinel_tls``; one server: rediss://) and the CA that signed
    their certificates (None: the system's), timeouts, and how many replicas confirm a write that must outlive a
    failover."""

    url: str
    sentinel_master: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    tls_ca_file: str | None = None
    sentinel_tls: bool = False
    socket_timeout: float = SOCKET_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    min_replicas: int = 0
    replica_timeout: float = 2.0


def redis_target(settings: Settings) -> RedisTarget:
    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    return RedisTarget(
        url=settings.redis_url,
        sentinel_master=settings.redis_sentinel_master,
        password=secret(settings.redis_password),
        sentinel_password=secret(settings.redis_sentinel_password),
        tls_ca_file=str(settings.redis_tls_ca_file) if settings.redis_tls_ca_file else None,
        sentinel_tls=settings.redis_sentinel_tls,
        socket_timeout=settings.redis_socket_timeout,
        connect_timeout=settings.redis_connect_timeout,
        min_replicas=settings.redis_min_replicas,
        replica_timeout=settings.redis_replica_timeout,
    )


def _socket_options(target: RedisTarget) -> dict[str, Any]:
    return {
        "socket_connect_timeout": target.connect_timeout,
        "socket_timeout": target.socket_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": TCP_KEEPALIVE,
    }


def connect(target: RedisTarget | str) -> redis.Redis:
    if isinstance(target, str):
        target = RedisTarget(target)
    options = {
        **_socket_options(target),
        "decode_responses": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    nodes = redis_nodes(target.url)
    tls = tls_options(target.tls_ca_file) if is_tls_url(target.url) or target.sentinel_tls else {}
    if not nodes.sentinel:
        if target.password is not None:
            options["password"] = target.password
        return redis.Redis.from_url(target.url, **options, **tls)
    if target.sentinel_master is None:
        raise ValueError("a sentinel:// URL needs the master's name (IMSREP_REDIS_SENTINEL_MASTER)")
    # A Sentinel that does not answer is skipped at once for the next one (redis-py's default retries it with
    # backoff for seconds).
    sentinel_options = {**_socket_options(target), "password": target.sentinel_password, "retry": SENTINEL_RETRY}
    if tls:
        sentinel_options.update(sentinel_tls_options(target.tls_ca_file))
    sentinel = Sentinel(list(nodes.hosts), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(
        target.sentinel_master,
        db=nodes.db,
        password=target.password or nodes.password,
        connection_class=FollowingSSLConnection if tls else FollowingConnection,
        **options,
        **tls,
    )


@dataclass(frozen=True)
class Durability:
    """How a write that must outlive a failover is confirmed: by ``replicas`` replicas within ``timeout`` seconds
    (0 replicas: a single Redis, nothing to wait for)."""

    replicas: int = 0
    timeout: float = 2.0

    def pipeline(self, client: redis.Redis) -> Pipeline:
        """A MULTI/EXEC pipeline (WATCH works as usual) whose ``execute`` then waits for the replicas on the same
        connection; pass it to ``require_replicas`` afterwards."""
        pipe = _ConfirmedPipeline(client.connection_pool, client.response_callbacks, True, None)
        pipe.replicas, pipe.timeout_ms = self.replicas, max(1, int(self.timeout * 1000))
        return pipe

    def confirm(self, client: redis.Redis, fence: str) -> None:
        """Confirm that every write made so far is on the replicas (``NotReplicated`` if not in time). WAIT counts
        only its own connection's writes, so one is made (an increment of ``fence``) and confirmed: replicas apply
        writes in order, so one that has this write has every earlier one."""
        if self.replicas == 0:
            return
        pipe = self.pipeline(client)
        with pipe:
            pipe.incr(fence)
            pipe.execute()
        self.require_replicas(pipe)

    def require_replicas(self, pipe: Pipeline) -> None:
        """Raise ``NotReplicated`` unless the pipeline's last transaction reached enough replicas. The write stands
        on the master either way: every caller's write is safe to send again."""
        acked = getattr(pipe, "acked", 0)
        if acked < self.replicas:
            raise NotReplicated(acked, self.replicas)


class _ConfirmedPipeline(Pipeline):
    """A transaction followed, on the very connection that ran it, by ``WAIT``: WAIT only counts the writes of the
    connection it is sent on, and a pool hands out any connection."""

    replicas = 0
    timeout_ms = 0
    acked = 0

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        replies = super()._execute_transaction(connection, commands, raise_on_error)
        if self.replicas > 0:
            connection.send_command("WAIT", self.replicas, self.timeout_ms)
            self.acked = int(connection.read_response())
        return replies
