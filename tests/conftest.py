"""Fixtures shared by every test tier: a real Redis server and the IMS simulator as real processes.

Both are started by ``cli.stack.LocalStack`` (the code ``imsrep up`` runs), each in a process group of its own, on a
free port, and stopped by the fixture's teardown.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cli.services import SIMULATOR_PROJECT_ID, SIMULATOR_REGION
from cli.stack import LocalStack, StackOptions
from config.settings import ENV_PREFIX
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


# Options with which a simulator started ahead of time would differ from one started when asked: its catalogue file is
# read at start (and a test writes its own), and its new images are scheduled from its start.
_NOT_AHEAD = frozenset({"catalog", "new_images_every"})


class SimulatorSpare:
    """One simulator started ahead of time. While a test runs, the simulator the next test will likely ask for (the
    options this one asked for) starts beside it, so that the next test finds it ready instead of waiting about a
    second for its imports and server: some 180 tests start a simulator of their own. Each test still gets a fresh
    process that no other test used; a spare started with other options than asked for is stopped unused. Used ones
    are stopped on a thread of their own (``retire``): nobody waits for a simulator that is no longer asked anything.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key: tuple[object, ...] = ()
        self.stack: LocalStack | None = None
        self.made = 0
        self._stopping = ThreadPoolExecutor(1, thread_name_prefix="simulator-stop")

    def take(self, key: tuple[object, ...]) -> LocalStack | None:
        """The spare, if it was started with ``key`` (it may still be starting); otherwise None."""
        if self.stack is None or key != self.key:
            return None
        stack, self.stack = self.stack, None
        return stack

    def prepare(self, key: tuple[object, ...], make: Callable[[Path], LocalStack]) -> None:
        """A spare for ``key``, started now (not waited for) unless there is one; any other is stopped."""
        if self.stack is not None and key == self.key:
            return
        self.close()
        self.made += 1
        self.key, self.stack = key, make(self.root / f"spare-{self.made}")
        self.stack.start_simulator(wait=False)

    def retire(self, stack: LocalStack) -> None:
        """Stop ``stack`` without waiting for it."""
        self._stopping.submit(stack.stop)

    def close(self) -> None:
        if self.stack is not None:
            self.retire(self.stack)
            self.stack = None

    def shut_down(self) -> None:
        """Stop the spare, and return once every simulator handed to ``retire`` has stopped."""
        self.close()
        self._stopping.shutdown(wait=True)


@pytest.fixture(scope="session")
def simulator_spare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorSpare]:
    spare = SimulatorSpare(tmp_path_factory.mktemp("simulator-spares"))
    yield spare
    spare.shut_down()


def _next_test_uses(request: pytest.FixtureRequest, fixture: str) -> bool:
    items = request.session.items
    at = next((n for n, item in enumerate(items) if item is request.node), len(items))
    return at + 1 < len(items) and fixture in getattr(items[at + 1], "fixturenames", ())


@pytest.fixture
def start_simulator(
    tmp_path: Path, request: pytest.FixtureRequest, simulator_spare: SimulatorSpare
) -> Iterator[Callable[..., SimulatorServer]]:
    """Factory: start an IMS simulator process with the given options (``copy_seconds=0.5``, ``seed=1``, ...);
    its AK/SK are the simulator's defaults, given through its environment. It may have been started ahead of time
    (``SimulatorSpare``) with exactly these options and ``IMSREP_SIM_*`` environment."""
    started: list[LocalStack] = []

    def start(project_ids: list[str] | None = None, **options: object) -> SimulatorServer:
        pids = project_ids or [SIM_PROJECT]

        def make(state_dir: Path) -> LocalStack:
            simulator = {"access_key": SIM_AK, "secret_key": SIM_SK, **options}
            chosen = StackOptions(state_dir, simulator=simulator, simulator_project_ids=tuple(pids), ready_timeout=30)
            return LocalStack(chosen)

        # The process inherits the environment, where IMSREP_SIM_* variables set its options too.
        env = sorted((k, v) for k, v in os.environ.items() if k.startswith(f"{ENV_PREFIX}SIM_"))
        key = (tuple(pids), sorted((k, repr(v)) for k, v in options.items()), env)
        stack = simulator_spare.take(key) or make(tmp_path / f"simulator-{len(started)}")
        started.append(stack)
        if "simulator" not in stack.processes:
            stack.start_simulator(wait=False)
        stack.wait_ready(["simulator"])
        if _NOT_AHEAD.isdisjoint(options) and _next_test_uses(request, "start_simulator"):
            simulator_spare.prepare(key, make)
        return SimulatorServer(stack, stack.port("simulator"), SIM_REGION, pids, SIM_AK, SIM_SK)

    yield start
    for stack in started:
        simulator_spare.retire(stack)
