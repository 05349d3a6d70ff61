"""The reliability tier: the whole system as real processes (Redis with AOF, the simulator, the API, a Celery worker
and beat) on ``LocalStack``, each in its own process group so a test can SIGKILL one and start it again on the same
port and data. A cluster may run Redis under Sentinel instead (a master, replicas, three Sentinels) and several
workers with node names of their own.

A test gets a cluster of its own (``cluster``: own Redis, so killing it disturbs nobody), or one it shares with the
other tests of its module that ask for the same options (``shared_cluster``: a cluster takes several seconds to
start), each test leaving it with every service running again and no fault on. Timings
are shortened so recovery takes seconds, not the production minutes, while keeping the production invariant
``visibility_timeout > longest countdown + task_time_limit``. Each scenario records its counts (items, lost,
duplicated, stuck, ...) in ``<pytest basetemp>/reliability-summary.json`` and, when ``IMSREP_RELIABILITY_SUMMARY``
names a file, there too; ``tests/reliability/report.py`` turns that file into the table of ``docs/reliability.md``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from cli.demo import simulator_account
from cli.processes import ServiceError, wait_until
from cli.stack import DISCARD_STOP_GRACE, HOST, LocalStack, SentinelSpec, StackOptions, WorkerSpec
from simulator.catalog.generate import generate
from tests.support import CRASH_TIMINGS, FAST_RATE_ENV, fast_env
from worker.data import DataLayer, RecordStore, open_data_layer
from worker.domain.states import ItemState
from worker.ims.client import ImsClient

pytestmark = pytest.mark.integration

PREFIX = "rel"
IN_FLIGHT = (ItemState.VALIDATING, ItemState.SUBMITTING, ItemState.REPLICATING, ItemState.FINISHING)
SOURCES = 220  # distinct source images, so a second copy of any of them shows in the listing

# The test stacks' timing profile (tests.support.FAST_TIMINGS: the reconciler resends a step 4 s past its due time,
# every 2 s; a submit lock lapses 2 s after its holder is gone), with the short limits of tests.support.CRASH_TIMINGS.
TIMINGS = fast_env(**CRASH_TIMINGS)
SERVICE_ENV = {"IMSREP_KEY_PREFIX": PREFIX, "IMSREP_WORKER_CONCURRENCY": "4", **TIMINGS, **FAST_RATE_ENV}


@dataclass
class Cluster:
    """The whole system on ``LocalStack`` (no Flower), with the helpers the scenarios count with."""

    stack: LocalStack
    workers: tuple[str, ...] = ("worker",)
    handed_out: int = 0  # source images given to tests so far: a shared cluster's next test gets others
    # Counters as a test found them (a shared cluster's earlier tests counted too): repairs, retries, copies adopted.
    counted_from: dict[str, Counter[str]] = field(default_factory=dict)

    # -- processes -----------------------------------------------------------------------------------------------

    def start(self, *, worker: bool = True) -> Cluster:
        self.stack.start()
        if not worker:
            return self
        self.wait_worker_ready()
        return self

    def start_worker(self, queues: list[str] | None = None) -> None:
        self.stack.start_worker(queues=queues)

    def stop_worker(self) -> None:
        self.stack.stop_service("worker", timeout=10)

    def start_redis(self) -> None:
        # Same port and data directory every time: a restart replays the AOF (it answers LOADING until done).
        self.stack.restart("redis")

    def wait_worker_ready(self) -> None:
        """Until the worker's heartbeat is in Redis (what the API's /readyz reads)."""
        wait_until(lambda: self.data().telemetry.workers_seen(0) > 0, 60, "the worker's heartbeat", interval=0.2)

    def kill(self, name: str) -> None:
        """SIGKILL the service's whole process group (a Celery worker and its pool children), as a crash would."""
        self.stack.kill(name)

    def lose(self, name: str) -> None:
        """SIGKILL the service and forget it: a host gone for good, which the rest must do without."""
        self.stack.kill(name)
        self.stack.processes.pop(name)

    def stop(self) -> None:
        self.stack.stop()

    def assert_running(self) -> None:
        """Every service is still up (a ServiceError, unlike other errors, ends a ``wait_until`` at once)."""
        for proc in self.stack.processes.values():
            if not proc.running():
                raise ServiceError(f"{proc.name} died:\n{proc.log_tail()}")

    def _follow_master(self, name: str) -> None:
        """A Redis server started again under Sentinel replicates the master at once, as Sentinel has it do some
        seconds later: it comes back a master of its own (a lost master), or a replica of the first master."""
        master = self.stack.redis_master() if self.stack.options.sentinel else None
        if master is None or name == master or not name.startswith("redis"):
            return
        server = redis.Redis(HOST, self.stack.port(name), password=self.stack.passwords.server, socket_timeout=5)
        server.replicaof(HOST, self.stack.port(master))
        server.close()

    # -- clients ---------------------------------------------------------------------------------------------------

    @property
    def sim_url(self) -> str:
        return self.stack.info.simulator_url or ""

    def redis(self) -> redis.Redis:
        password = self.stack.passwords.server
        return redis.Redis.from_url(
            self.stack.info.redis_url, password=password, decode_responses=True, socket_timeout=5
        )

    def data(self) -> DataLayer:
        return open_data_layer(self.stack.info.redis_target(), PREFIX)  # one Redis, or the master Sentinel names

    def store(self) -> RecordStore:
        return self.data().records

    def api(self) -> httpx.Client:
        info = self.stack.info
        return httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_token}"}, timeout=30)

    def ims(self, region: str | None = None) -> ImsClient:
        """A signed client of the account's project, or of ``region``'s default project (another region served)."""
        account = simulator_account(self.stack.info)
        if region is not None:
            view = httpx.get(f"{self.sim_url}/_sim/regions", timeout=10).json()[region]
            account = account.in_region(region, view["project_id"])
        return ImsClient(account, connect_timeout=5, read_timeout=30)

    def sources(self, n: int) -> list[str]:
        """``n`` source images that no earlier test of this cluster was given."""
        with self.ims() as ims:
            ids = sorted(image.id for image in ims.iter_images() if not _copy_of(image.data_origin))
        first, self.handed_out = self.handed_out, self.handed_out + n
        assert len(ids) >= self.handed_out, f"the catalogue has {len(ids)} images, {self.handed_out} wanted"
        return ids[first : self.handed_out]

    def submit(self, sources: list[str], **fields: object) -> dict[str, Any]:
        """One item per source, each with ``fields`` (``target_region``, ``tags``...)."""
        with self.api() as api:
            response = api.post("/v1/batches", json={"items": [{"image_id": s, **fields} for s in sources]})
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

    def copies(self, region: str | None = None) -> Counter[str]:
        """Copies per source image, from the IMS image listing (of ``region``'s default project)."""
        with self.ims(region) as ims:
            return Counter(source for image in ims.iter_images() if (source := _copy_of(image.data_origin)))

    def project(self) -> dict[str, Any]:
        projects = httpx.get(f"{self.sim_url}/_sim/projects", timeout=10).json()["projects"]
        return next(p for p in projects if p["project_id"] == self.stack.info.simulator_project_id)

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

    def queued_items(self, queue: str) -> int:
        """The items the messages waiting in ``queue`` carry: a bundle's each (worker/bundles.py)."""
        count = 0
        for message in self.redis().lrange(queue, 0, -1):
            _args, kwargs, _embed = json.loads(base64.b64decode(json.loads(message)["body"]))
            count += len(kwargs.get("bundle", [kwargs]))
        return count

    def received_counts(self) -> Counter[str]:
        """How many times the worker received each task ID (its log says ``Task <name>[<id>] received``)."""
        return Counter(re.findall(r"Task [\w.]+\[([0-9a-f-]+)\] received", self.worker_log()))

    def worker_log(self) -> str:
        """Every worker's log, one after the other."""
        return "".join((self.stack.log_dir / f"{name}.log").read_text(errors="replace") for name in self.workers)

    def logs(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.stack.log_dir.glob("*.log")))

    def slots_held(self) -> int:
        """Slots held in both of the account's pools (its in-region and its cross-region copies)."""
        slots = self.data().slots
        return slots.in_use("default") + slots.in_use("default:cross-region")

    def wait_slots_free(self, timeout: float = 20) -> int:
        """Slots still held after waiting (the reconciler frees those of terminal items)."""
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: self.slots_held() == 0, timeout, "every slot to be free", interval=0.5)
        return self.slots_held()

    def repairs(self) -> dict[str, int]:
        """The reconciler's repairs by kind, since the test took the cluster."""
        return self._since("repairs")

    def retries(self) -> dict[str, int]:
        """Reschedules by ``task:cause``, since the test took the cluster."""
        return self._since("retries")

    def _counters(self) -> dict[str, Counter[str]]:
        telemetry = self.data().telemetry
        return {
            "repairs": Counter(telemetry.repairs()),
            "retries": Counter({f"{task}:{cause}": n for (task, cause), n in telemetry.retries().items()}),
            "adopted": Counter(adopted=self.worker_log().count("adopting copy")),
        }

    def _since(self, name: str) -> dict[str, int]:
        return dict(self._counters()[name] - self.counted_from.get(name, Counter()))

    def take(self) -> Cluster:
        """Hand the cluster to a test: every service running (those an earlier test lost or killed started again) and
        the counters counted from now."""
        for name in self.stack.services:
            proc = self.stack.processes.get(name)
            if proc is None or not proc.running():
                self.stack.restart(name)
                self._follow_master(name)
        if self.stack.options.sentinel is not None:
            self.stack.wait_topology()  # a master back from the dead is a replica again
        if self.stack.options.workers:
            self.wait_worker_ready()
        self.counted_from = self._counters()
        return self

    # -- timing a fault ----------------------------------------------------------------------------------------------

    def terminal(self, item_ids: list[str]) -> int:
        return sum(1 for s in self.states(item_ids).values() if s is not None and s.terminal)

    def in_flight(self, item_ids: list[str]) -> tuple[dict[str, ItemState], float]:
        """Items being worked on now (their next step is a message somewhere; waiting items wait for a slot) with
        their state, and the wall-clock time they were read at."""
        at = time.time()
        return {i: s for i, s in self.states(item_ids).items() if s is not None and s in IN_FLIGHT}, at

    def moves(self, item_ids: list[str], since: float) -> dict[str, float | None]:
        """Per item, seconds after ``since`` (a wall-clock time) until it entered a new state (None: not yet)."""
        store, found = self.store(), {}
        for item_id in item_ids:
            later = [t.at for t in store.history(item_id) if t.at > since]
            found[item_id] = round(min(later) - since, 1) if later else None
        return found

    def moved_on(self, item_ids: list[str], since: float) -> float | None:
        """Seconds after ``since`` by which every one of the items had entered a new state; None while one has not."""
        times = list(self.moves(item_ids, since).values())
        return None if None in times else max(times, default=0.0)

    def wait_moved_on(self, item_ids: list[str], since: float, timeout: float) -> float | None:
        """``moved_on`` once every item has moved (None if one has not within ``timeout``)."""
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: self.moved_on(item_ids, since) is not None, timeout, "in-flight items", interval=0.5)
        return self.moved_on(item_ids, since)

    def first_accepted(self, source: str, since: float, timeout: float) -> tuple[float, str, Counter[str]]:
        """POST a one-item batch (the same Idempotency-Key every time, as a client retrying does) until it is
        answered 202: seconds after ``since``, its item ID, and the answers seen by status (503 while Redis could
        not keep it; ``timeout`` when the API took longer than 30 s)."""
        seen: Counter[str] = Counter()
        accepted: list[str] = []

        def post() -> bool:
            try:
                with self.api() as api:
                    body = {"items": [{"image_id": source}]}
                    response = api.post("/v1/batches", json=body, headers={"Idempotency-Key": f"p-{source}"})
            except httpx.HTTPError:
                seen["timeout"] += 1
                return False
            seen[str(response.status_code)] += 1
            if response.status_code == 202:
                accepted.extend(response.json()["item_ids"])
            return bool(accepted)

        wait_until(post, timeout, "the API to accept a batch again", interval=0.2)
        return round(time.time() - since, 1), accepted[0], seen

    def outcome(self, item_ids: list[str], sources: list[str], region: str | None = None) -> dict[str, Any]:
        """The counts every scenario reports: lost, duplicated, stuck, plus how the items ended (copies counted
        where they are made: ``region`` for cross-region copies)."""
        states = self.states(item_ids)
        copies = self.copies(region)
        return {
            "items": len(item_ids),
            "lost": sum(1 for s in states.values() if s is None),
            "duplicated": sum(1 for s in sources if copies[s] > 1),
            "stuck": sum(1 for s in states.values() if s is not None and not s.terminal),
            "by_state": dict(Counter(s.value for s in states.values() if s is not None)),
            "slots_held_at_end": self.wait_slots_free(),
            "peak_concurrent_jobs": self.project()["peak_concurrent_jobs"],
            "reconciler_repairs": self.repairs(),
            "copies_adopted": self._since("adopted").get("adopted", 0),
        }


def _copy_of(data_origin: str | None) -> str | None:
    """The source image of a copy: IMS sets ``__data_origin`` to ``image,<region>,<source image ID>``."""
    if data_origin and data_origin.startswith("image,"):
        return data_origin.rsplit(",", 1)[1]
    return None


def _start_cluster(
    state_dir: Path,
    *,
    worker: bool = True,
    env: dict[str, str] | None = None,
    regions: tuple[str, ...] = (),
    workers: tuple[str, ...] = ("worker",),
    sentinel: SentinelSpec | None = None,
    sources: int = SOURCES,
    **sim_options: object,
) -> Cluster:
    state_dir.mkdir(parents=True, exist_ok=True)
    catalog = state_dir / "catalog.json"
    catalog.write_text(json.dumps(generate(sources, {"ordinary": 1.0}, seed=5)))
    options = StackOptions(
        state_dir=state_dir / "stack",
        use_simulator=True,
        simulator={"image_quota": 10_000, "seed": 3, "catalog": catalog, **sim_options},
        simulator_regions=regions,
        env={**SERVICE_ENV, **(env or {})},
        workers=tuple(WorkerSpec(name) for name in workers) if worker else (),
        sentinel=sentinel,
        flower=False,
        stop_grace=DISCARD_STOP_GRACE,
    )
    return Cluster(LocalStack(options), workers=workers)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Factory: ``cluster(copy_seconds=1, error_rate=0.1, ...)`` starts one with those simulator options
    (``regions=("cn-south-1",)``: the simulator serves that region too, the account's cross-region destination)."""
    started: list[Cluster] = []

    def make(*, worker: bool = True, **options: Any) -> Cluster:
        started.append(_start_cluster(tmp_path / f"cluster-{len(started)}", worker=worker, **options))
        return started[-1].start(worker=worker)

    yield make
    for c in started:
        c.stop()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Cluster]]:
    """Factory like ``cluster``, for faults a test can undo: the first test of the module that asks for these options
    starts the cluster, the next ones take it as it runs (``Cluster.take``), each with source images of its own. Its
    scenarios' counts are per test: their items, their sources' copies, the counters since they took it; IMS's peak
    of concurrent copies is the cluster's, over every test so far."""
    started: dict[str, Cluster] = {}

    def make(**options: Any) -> Cluster:
        key = repr(sorted(options.items()))
        if key in started:
            return started[key].take()
        started[key] = _start_cluster(tmp_path_factory.mktemp("shared-cluster"), **options)
        return started[key].start(worker=options.get("worker", True)).take()

    yield make
    for c in started.values():
        c.stop()


_SUMMARY: list[dict[str, Any]] = []


@pytest.fixture
def record(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., None]:
    """Record a scenario's figures; the file is rewritten after each, so a later failure keeps earlier rows."""
    started = time.monotonic()

    def write(scenario: str, faults: str, figures: dict[str, Any], env: str = "") -> None:
        """``env``: variables the command needs to give these figures again (``NAME=value``)."""
        row = {
            "scenario": scenario,
            "faults": faults,
            **figures,
            "seconds": round(time.monotonic() - started, 1),
            "command": f"{env} .venv/bin/pytest {request.node.nodeid}".strip(),
        }
        _SUMMARY[:] = [r for r in _SUMMARY if r["scenario"] != scenario] + [row]
        targets = [tmp_path_factory.getbasetemp() / "reliability-summary.json"]
        if os.environ.get("IMSREP_RELIABILITY_SUMMARY"):
            targets.append(Path(os.environ["IMSREP_RELIABILITY_SUMMARY"]))
        for target in targets:
            target.write_text(json.dumps(_SUMMARY, indent=2) + "\n")
        print(f"\n{scenario}: {json.dumps(row)}")

    return write
