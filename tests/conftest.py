"""Fixtures shared by every test tier: free ports, a real Redis server and the IMS simulator as real processes.

Every background process is started through ``cli.processes`` (the code ``imsrep up`` uses) in a process group of
its own, on a free port, and is stopped by the fixture's teardown.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cli.processes import ManagedProcess, free_port, http_ok, python_module, start_redis
from cli.services import option_flags
from worker.data import DataLayer, open_data_layer

SIM_REGION = "cn-north-4"
SIM_PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
SIM_AK = "AKEXAMPLE"
SIM_SK = "SKEXAMPLE"


@dataclass
class RedisServer:
    process: ManagedProcess
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def data(self, prefix: str | None = None) -> DataLayer:
        """The data layer over this server, under ``prefix`` (a fresh one by default, so tests keep apart)."""
        return open_data_layer(self.url, prefix or f"t{uuid.uuid4().hex[:8]}")


@dataclass
class SimulatorServer:
    process: ManagedProcess
    port: int
    region: str
    project_ids: list[str]
    access_key: str
    secret_key: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def project_id(self) -> str:
        return self.project_ids[0]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One durable (AOF) Redis for the session; tests keep apart by key prefix or database number."""
    base = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = start_redis(port, base / "data", base)
    yield RedisServer(proc, port, base / "data")
    proc.stop()


def simulator_argv(port: int, project_ids: list[str], **options: object) -> list[str]:
    argv = python_module(
        "simulator", "--host", "127.0.0.1", "--port", str(port), "--region", SIM_REGION,
        "--access-key", SIM_AK, "--secret-key", SIM_SK,
    )
    for pid in project_ids:
        argv += ["--project-id", pid]
    return argv + option_flags(options)


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[Callable[..., SimulatorServer]]:
    """Factory: start an IMS simulator process with the given options (``copy_seconds=0.5``, ``seed=1``, ...)."""
    started: list[ManagedProcess] = []

    def start(project_ids: list[str] | None = None, **options: object) -> SimulatorServer:
        pids = project_ids or [SIM_PROJECT]
        port = free_port()
        argv = simulator_argv(port, pids, **options)
        proc = ManagedProcess(f"simulator-{port}", argv, tmp_path / f"simulator-{port}.log").start()
        started.append(proc)
        proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/_sim/health"), timeout=30)
        return SimulatorServer(proc, port, SIM_REGION, pids, SIM_AK, SIM_SK)

    yield start
    for proc in started:
        proc.stop()


def random_project_id() -> str:
    return secrets.token_hex(16)

