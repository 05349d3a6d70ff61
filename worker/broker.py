"""The Redis broker transport the worker uses: kombu's, with one fix so a Redis restart does not kill the worker,
and one saving.

When the broker connection drops, Celery 5.7 first ``collect()``s the connection (which detaches the transport from
its ``Connection``) and then closes it; closing the channel tries to hand the worker's unacked messages back to
Redis, which needs a fresh connection pool built from that now-missing ``Connection``, and the resulting
``AttributeError`` ('NoneType' object has no attribute 'hostname') is not a connection error, so it escapes and the
worker exits with "Unrecoverable error". Here that case raises a connection error instead: Celery ignores it and
reconnects, and the messages, still in Redis's unacked hash, come back with the visibility-timeout sweep.

The saving: kombu builds a new ``redis.Redis`` client object around the channel's connection pool for every publish,
ack and event (each builds a table of 164 response callbacks: about 50 us of CPU), several times per task in
the worker's main process and in every pool process. The client holds nothing but the pool, so one is kept per pool
and built again only when kombu replaces the pool (after a fork or a lost connection).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

# Celery's ``broker_transport``: a "module:Class" path that kombu resolves; the URL still says where Redis is.
TRANSPORT = "worker.broker:Transport"


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was already torn down")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
