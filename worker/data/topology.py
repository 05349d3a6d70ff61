"""What the Sentinels and the Redis servers under them say about each other: which server is master, which replicas
are in sync, whether every Sentinel knows the others. Read by the local stack (readiness of a Sentinel topology)
and the reliability tier (failover times); the pipeline itself never needs it, as its connections ask Sentinel.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.data.connection import RedisTarget, connect

PROBE_TIMEOUT = 1.0


@dataclass(frozen=True)
class SentinelView:
    """One Sentinel's view of a master: its address, its replicas that are up, and how many other Sentinels."""

    master: tuple[str, int] | None
    replicas_up: tuple[tuple[str, int], ...]
    other_sentinels: int


@dataclass(frozen=True)
class Replication:
    """A Redis server's ``INFO replication``: its role, and for a replica whether its link to the master is up."""

    role: str
    link_up: bool
    offset: int
    replicas_online: int


def _client(host: str, port: int, password: str | None = None) -> redis.Redis:
    return connect(RedisTarget(f"redis://{host}:{port}/0", password=password, socket_timeout=PROBE_TIMEOUT * 2))


def sentinel_view(host: str, port: int, master: str, password: str | None = None) -> SentinelView:
    """What the Sentinel at ``host:port`` knows of ``master`` (raises ``redis.RedisError`` if it does not answer)."""
    client = _client(host, port, password)
    try:
        address = client.sentinel_get_master_addr_by_name(master)
        replicas = client.sentinel_slaves(master)
        sentinels = client.sentinel_sentinels(master)
    finally:
        client.close()
    up = tuple(
        (str(r["ip"]), int(r["port"]))
        for r in replicas
        if not (r.get("is_sdown") or r.get("is_odown") or r.get("is_disconnected"))
    )
    master_address = (str(address[0]), int(address[1])) if address else None
    return SentinelView(master_address, up, len(sentinels))


def replication(host: str, port: int, password: str | None = None) -> Replication:
    """The server's replication state (raises ``redis.RedisError`` if it does not answer)."""
    client = _client(host, port, password)
    try:
        info = client.info("replication")
    finally:
        client.close()
    role = str(info.get("role"))
    offset = int(info.get("slave_repl_offset" if role == "slave" else "master_repl_offset", 0))
    return Replication(role, info.get("master_link_status") == "up", offset, int(info.get("connected_slaves", 0)))
