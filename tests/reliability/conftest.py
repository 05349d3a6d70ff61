"""The reliability tier: the whole system as real processes (Redis with AOF, the simulator, the API, a Celery worker
and beat), each in its own process group so a test can SIGKILL one and start it again on the same port and data.

Every test gets its own cluster (own Redis, so killing it disturbs nobody) and stops all of it in teardown. Timings
are shortened so recovery takes seconds, not the production minutes, while keeping the production invariant
``visibility_timeout > longest countdown + task_time_limit``. Each scenario records its counts (items, lost,
duplicated, stuck, ...) in ``<pytest basetemp>/reliability-summary.json`` and, when ``IMSREP_RELIABILITY_SUMMARY``
names a file, there too; ``tests/reliability/report.py`` turns that file into the table of ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from cli import services
from cli.processes import ManagedProcess, ServiceError, free_port, http_ok, python_module, start_redis, wait_until
from config.settings import AccountSettings
from simulator.catalog.generate import generate
from worker.data import DataLayer, RecordStore, open_data_layer
from worker.domain.states import ItemState
from worker.ims.client import ImsClient
from worker.run import WORKER_ENV, beat_argv, worker_argv

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
PREFIX = "rel"
SOURCES = 120  # distinct source images, so a second copy of any of them shows in the listing
AK = "AKRELIABILITYTEST"
SK = secrets.token_urlsafe(24)

# Short, but visibility_timeout (10) > longest countdown (2) + task_time_limit (6), as Settings demands; the
# reconciler sees an item as stalled after 8 s of silence (that countdown plus the time limit).
TIMINGS = {
    "IMSREP_POLL_INITIAL_DELAY": "0.5",
    "IMSREP_POLL_MIN_INTERVAL": "0.2",
    "IMSREP_POLL_MAX_INTERVAL": "2",
    "IMSREP_RETRY_BASE_DELAY": "0.2",
    "IMSREP_RETRY_MAX_DELAY": "2",
    "IMSREP_TASK_SOFT_TIME_LIMIT": "5",
    "IMSREP_TASK_TIME_LIMIT": "6",
    "IMSREP_VISIBILITY_TIMEOUT": "10",
    "IMSREP_HTTP_CONNECT_TIMEOUT": "2",
    "IMSREP_HTTP_READ_TIMEOUT": "3",
    "IMSREP_STALL_SECONDS": "4",
    "IMSREP_RECONCILE_INTERVAL": "2",
}


@dataclass
class Cluster:
    base: Path
    sim_options: dict[str, object]
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    redis_port: int = 0
    sim_port: int = 0
    api_port: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    # -- processes -----------------------------------------------------------------------------------------------

    def start(self, *, worker: bool = True) -> Cluster:
        self.redis_port, self.sim_port, self.api_port = free_port(), free_port(), free_port()
        self.start_redis()
        catalog = self.base / "catalog.json"
        catalog.write_text(json.dumps(generate(SOURCES, {"ordinary": 1.0}, seed=5)))
        sim_args = services.simulator_args(HOST, self.sim_port, catalog=catalog, **self.sim_options)
        self._run("simulator", python_module(*sim_args), services.simulator_env(AK, SK))
        self.processes["simulator"].wait_ready(lambda: http_ok(f"{self.sim_url}/_sim/health"), timeout=30)
        self.env = self._service_env()
        self._run("api", python_module(*services.api_args(HOST, self.api_port)), self.env)
        self._run("beat", [*beat_argv(loglevel="WARNING"), "-s", str(self.base / "celerybeat-schedule")], self.env)
        if worker:
            self.start_worker()
        self.processes["api"].wait_ready(lambda: http_ok(f"{self.api_url}/healthz"), timeout=30)
        return self

    def _service_env(self) -> dict[str, str]:
        account = "IMSREP_ACCOUNTS__DEFAULT__"
        return {
            "IMSREP_REDIS_URL": self.redis_url,
            "IMSREP_KEY_PREFIX": PREFIX,
            "IMSREP_API_TOKENS": self.token,
            "IMSREP_STATE_DIR": str(self.base / "state"),
            "IMSREP_DEFAULT_ACCOUNT": "default",
            f"{account}REGION": services.SIMULATOR_REGION,
            f"{account}PROJECT_ID": services.SIMULATOR_PROJECT_ID,
            f"{account}IMS_ENDPOINT": self.sim_url,
            f"{account}KMS_ENDPOINT": self.sim_url,
            f"{account}IAM_ENDPOINT": self.sim_url,
            f"{account}ACCESS_KEY": AK,
            f"{account}SECRET_KEY": SK,
            f"{account}REQUEST_RATE": "100",
            f"{account}REQUEST_BURST": "50",
            **TIMINGS,
            **self.env,
        }

    def _run(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.base / "logs" / f"{name}.log", env=env, cwd=self.base).start()
        self.processes[name] = proc
        return proc

    def start_redis(self) -> None:
        # Same port and data directory every time: a restart replays the AOF (it answers LOADING until done).
        self.processes["redis"] = start_redis(self.redis_port, self.base / "redis", self.base / "logs")
        wait_until(lambda: self.redis().ping(), 30, "Redis to load its AOF", interval=0.1)

    def start_worker(self, queues: list[str] | None = None) -> ManagedProcess:
        argv = worker_argv(concurrency=4, **({"queues": queues} if queues else {}))
        return self._run("worker", argv, {**self.env, **WORKER_ENV})

    def wait_worker_ready(self) -> None:
        """Until the worker's heartbeat is in Redis (what the API's /readyz reads)."""
        wait_until(lambda: self.data().telemetry.workers_seen(0) > 0, 60, "the worker's heartbeat", interval=0.2)

    def kill(self, name: str) -> None:
        """SIGKILL the service's whole process group (a Celery worker and its pool children), as a crash would."""
        self.processes[name].kill()

    def stop(self) -> None:
        for name in ("worker", "beat", "api", "simulator", "redis"):  # Redis last: in-flight acks still land
            if name in self.processes:
                self.processes[name].stop(timeout=10)

    def assert_running(self) -> None:
        """Every service is still up (a ServiceError, unlike other errors, ends a ``wait_until`` at once)."""
        for proc in self.processes.values():
            if not proc.running():
                raise ServiceError(f"{proc.name} died:\n{proc.log_tail()}")

    # -- clients ---------------------------------------------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/0"

    @property
    def sim_url(self) -> str:
        return f"http://{HOST}:{self.sim_port}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=5)

    def data(self) -> DataLayer:
        return open_data_layer(self.redis_url, PREFIX)

    def store(self) -> RecordStore:
        return self.data().records

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def ims(self) -> ImsClient:
        account = AccountSettings(
            region=services.SIMULATOR_REGION, project_id=services.SIMULATOR_PROJECT_ID, ims_endpoint=self.sim_url,
            kms_endpoint=self.sim_url, iam_endpoint=self.sim_url, access_key=AK, secret_key=SK,
        )  # fmt: skip
        return ImsClient(account, connect_timeout=5, read_timeout=30)

    def sources(self, n: int) -> list[str]:
        with self.ims() as ims:
            ids = sorted(image.id for image in ims.iter_images() if not _copy_of(image.data_origin))
        assert len(ids) >= n, f"the catalogue has {len(ids)} images, {n} wanted"
        return ids[:n]

    def submit(self, sources: list[str]) -> dict[str, Any]:
        with self.api() as api:
            response = api.post("/v1/batches", json={"items": [{"image_id": s} for s in sources]})
        assert response.status_code == 202, response.text
        return response.json()

    # -- what happened ---------------------------------------------------------------------------------------------

    def states(self, item_ids: list[str]) -> dict[str, ItemState | None]:
        """Each accepted item's stored state (None: the item is gone, i.e. lost)."""
        found = {item.id: item.state for item in self.store().get_items(item_ids)}
        return {item_id: found.get(item_id) for item_id in item_ids}

    def wait_terminal(self, item_ids: list[str], timeout: float) -> bool:
        def done() -> bool:
            self.assert_running()
            return all(s is not None and s.terminal for s in self.states(item_ids).values())

        try:
            wait_until(done, timeout, "every item to reach a terminal state", interval=0.5)
        except TimeoutError:
            return False
        return True

    def copies(self) -> Counter[str]:
        """Copies per source image, from the IMS image listing."""
        with self.ims() as ims:
            return Counter(source for image in ims.iter_images() if (source := _copy_of(image.data_origin)))

    def project(self) -> dict[str, Any]:
        projects = httpx.get(f"{self.sim_url}/_sim/projects", timeout=10).json()["projects"]
        return next(p for p in projects if p["project_id"] == services.SIMULATOR_PROJECT_ID)

    def jobs(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.sim_url}/_sim/jobs", timeout=10).json()["jobs"]

    def set_faults(self, **knobs: float) -> None:
        response = httpx.post(f"{self.sim_url}/_sim/faults", json=knobs, timeout=10)
        assert response.status_code == 200, response.text

    def sim_stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.sim_url}/_sim/stats", timeout=10).json()

    def duplicate_queue(self, queue: str) -> list[str]:
        """Queue a byte-for-byte second copy of every message waiting in ``queue``; returns their task IDs."""
        r = self.redis()
        raw = r.lrange(queue, 0, -1)
        if raw:
            r.rpush(queue, *raw)
        return [json.loads(message)["headers"]["id"] for message in raw]

    def received_counts(self) -> Counter[str]:
        """How many times the worker received each task ID (its log says ``Task <name>[<id>] received``)."""
        return Counter(re.findall(r"Task [\w.]+\[([0-9a-f-]+)\] received", self.worker_log()))

    def worker_log(self) -> str:
        return (self.base / "logs" / "worker.log").read_text(errors="replace")

    def slots_held(self) -> int:
        return self.data().slots.in_use("default")

    def wait_slots_free(self, timeout: float = 20) -> int:
        """Slots still held after waiting (the reconciler frees those of terminal items)."""
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: self.slots_held() == 0, timeout, "every slot to be free", interval=0.5)
        return self.slots_held()

    def repairs(self) -> dict[str, int]:
        return self.data().telemetry.repairs()

    def outcome(self, item_ids: list[str], sources: list[str]) -> dict[str, Any]:
        """The counts every scenario reports: lost, duplicated, stuck, plus how the items ended."""
        states = self.states(item_ids)
        copies = self.copies()
        return {
            "items": len(item_ids),
            "lost": sum(1 for s in states.values() if s is None),
            "duplicated": sum(1 for s in sources if copies[s] > 1),
            "stuck": sum(1 for s in states.values() if s is not None and not s.terminal),
            "by_state": dict(Counter(s.value for s in states.values() if s is not None)),
            "slots_held_at_end": self.wait_slots_free(),
            "peak_concurrent_jobs": self.project()["peak_concurrent_jobs"],
            "reconciler_repairs": self.repairs(),
            "copies_adopted": self.worker_log().count("adopting copy"),
        }


def _copy_of(data_origin: str | None) -> str | None:
    """The source image of a copy: IMS sets ``__data_origin`` to ``image,<region>,<source image ID>``."""
    if data_origin and data_origin.startswith("image,"):
        return data_origin.rsplit(",", 1)[1]
    return None


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Factory: ``cluster(copy_seconds=1, error_rate=0.1, ...)`` starts one with those simulator options."""
    started: list[Cluster] = []

    def make(*, worker: bool = True, env: dict[str, str] | None = None, **sim_options: object) -> Cluster:
        options = {"image_quota": 10_000, "seed": 3, **sim_options}
        c = Cluster(tmp_path, options, env=dict(env or {}))
        started.append(c)
        return c.start(worker=worker)

    yield make
    for c in started:
        c.stop()


_SUMMARY: list[dict[str, Any]] = []


@pytest.fixture
def record(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., None]:
    """Record a scenario's figures; the file is rewritten after each, so a later failure keeps earlier rows."""
    started = time.monotonic()

    def write(scenario: str, faults: str, figures: dict[str, Any]) -> None:
        row = {
            "scenario": scenario,
            "faults": faults,
            **figures,
            "seconds": round(time.monotonic() - started, 1),
            "command": f".venv/bin/pytest {request.node.nodeid}",
        }
        _SUMMARY[:] = [r for r in _SUMMARY if r["scenario"] != scenario] + [row]
        targets = [tmp_path_factory.getbasetemp() / "reliability-summary.json"]
        if os.environ.get("IMSREP_RELIABILITY_SUMMARY"):
            targets.append(Path(os.environ["IMSREP_RELIABILITY_SUMMARY"]))
        for target in targets:
            target.write_text(json.dumps(_SUMMARY, indent=2) + "\n")
        print(f"\n{scenario}: {json.dumps(row)}")

    return write
