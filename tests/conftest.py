"""Fixtures shared by every test tier: a real Redis server and the IMS simulator as real processes.

Both are started by ``cli.stack.LocalStack`` (the code ``imsrep up`` runs), each in a process group of its own, on a
free port, and stopped by the fixture's teardown.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cli.services import SIMULATOR_PROJECT_ID, SIMULATOR_REGION
from cli.stack import LocalStack, StackOptions
from tests.support import password_url
from worker.data import DataLayer, open_data_layer

SIM_REGION = SIMULATOR_REGION
SIM_PROJECT = SIMULATOR_PROJECT_ID
# The simulator's own defaults, which its tests sign with (ims-contract.md's test vectors use them too).
SIM_AK = "AKEXAMPLE"
SIM_SK = "SKEXAMPLE"


@dataclass
class RedisServer:
    """The session's Redis, locked like ``imsrep up``'s: its URLs carry the password the stack made for it."""

    stack: LocalStack
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return self.db_url(0)

    def db_url(self, db: int) -> str:
        return password_url(self.stack, db)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def data(self, prefix: str | None = None) -> DataLayer:
        """The data layer over this server, under ``prefix`` (a fresh one by default, so tests keep apart)."""
        return open_data_layer(self.url, prefix or f"t{uuid.uuid4().hex[:8]}")


@dataclass
class SimulatorServer:
    stack: LocalStack
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
    with LocalStack(StackOptions(state_dir=tmp_path_factory.mktemp("redis"))) as stack:
        stack.start_redis()
        yield RedisServer(stack, stack.port("redis"), stack.state_dir / "redis")


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[Callable[..., SimulatorServer]]:
    """Factory: start an IMS simulator process with the given options (``copy_seconds=0.5``, ``seed=1``, ...);
    its AK/SK are the simulator's defaults, given through its environment."""
    started: list[LocalStack] = []

    def start(project_ids: list[str] | None = None, **options: object) -> SimulatorServer:
        pids = project_ids or [SIM_PROJECT]
        stack = LocalStack(
            StackOptions(
                state_dir=tmp_path / f"simulator-{len(started)}",
                simulator={"access_key": SIM_AK, "secret_key": SIM_SK, **options},
                simulator_project_ids=tuple(pids),
                ready_timeout=30,
            )
        )
        started.append(stack)
        stack.start_simulator()
        return SimulatorServer(stack, stack.port("simulator"), SIM_REGION, pids, SIM_AK, SIM_SK)

    yield start
    for stack in started:
        stack.stop()
