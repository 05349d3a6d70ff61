"""The local stack: Redis, the simulator, the API, workers, beat and Flower as one supervised set of processes.

The one stack that ``imsrep up``, ``imsrep demo``, every test tier and the benchmarks run, so all of them run exactly
what a user runs. Services are named entries (``cli.services.Service``): the stack starts all of them
(``start``), or the ones a test needs (``start_redis``, ``start_simulator``, ``start_worker``...), and can SIGKILL,
stop or restart any one by name on the same port and data (``kill``, ``stop_service``, ``restart``). Each service is
a process group of its own (``cli.processes``); ``start`` waits until each answers, writes the addresses and
credentials to ``<state dir>/stack.json`` (mode 0600; Redis's passwords apart, ``cli.redis_auth``), and ``stop`` ends
them all: SIGTERM to every group, SIGKILL after a grace period, data stores (Redis) last so in-flight acks still land.

Simulator mode (the simulator is started and one account ``default`` points at it) is chosen when no account is
configured, always for the demo, or when asked (tests); with accounts configured, they are used as they are (real
Huawei Cloud, or whatever endpoints they name) and no simulator runs.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from cli import services
from cli.processes import ManagedProcess, ServiceError, free_port, tcp_open
from cli.redis_auth import SENTINEL_PASSWORD_FILE, SERVER_PASSWORD_FILE, read_password, stack_passwords
from cli.services import Service, private_file
from config.settings import (
    ENV_PREFIX,
    EVERY_ACCOUNT,
    PrincipalSettings,
    Role,
    Settings,
    load_settings,
    redis_nodes,
    without_password,
)
from simulator.catalog.records import default_project_id_for
from worker.data import RedisTarget, open_data_layer, redis_target, topology

HOST = "127.0.0.1"
STACK_FILE = "stack.json"
LOCAL_PRINCIPAL = "local"  # the CLI's principal on a stack of its own
LOCAL_LIMITS = {
    name: next(rule.le for rule in PrincipalSettings.model_fields[name].metadata if hasattr(rule, "le"))
    for name in ("requests_per_second", "request_burst", "max_unfinished_items")
}
FLOWER_PASSWORD_FILE = "flower.password"  # Flower's password (mode 0600), for Flower alone
PRINCIPALS_FILE = "principals.toml"  # the teams' principals, re-read by the API when it changes
PRINCIPALS_HEADER = """\
# The principals of this stack's API, a table each; the API re-reads this file when it changes (docs/teams.md).
#
# [web-team]
# token_sha256 = "..."      # printf %s "$TOKEN" | sha256sum
# role = "submitter"        # reader, submitter, operator or admin
# accounts = ["default"]    # or ["*"]: every account
"""


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process: its service name (also its Celery node name, ``<name>@<host>``), the queues it consumes
    (None: every stage) and its pool size (None: ``IMSREP_WORKER_CONCURRENCY``)."""

    name: str = "worker"
    queues: tuple[str, ...] | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class SentinelSpec:
    """Redis under Sentinel instead of one server: the master (service ``redis``), ``replicas`` replicas
    (``redis-replica-1``...) and ``sentinels`` Sentinels (``sentinel-1``...) with a majority quorum, all watching the
    master named ``master``. Sentinel's own defaults (30 s, 3 min) suit a real deployment; tests shorten them."""

    master: str = "imsrep"
    replicas: int = 1
    sentinels: int = 3
    down_after_ms: int = 5000
    failover_timeout_ms: int = 10000


@dataclass
class StackOptions:
    state_dir: Path
    # A port of 0 means "any free port" (tests); ``imsrep up`` uses services.DEFAULT_PORTS.
    ports: dict[str, int] = field(default_factory=lambda: dict.fromkeys(services.DEFAULT_PORTS, 0))
    # Demo mode: always the simulator, always fresh random secrets, IMSREP_DEMO=true for the services.
    demo: bool = False
    # Run the simulator: None decides by the settings (yes when no account is configured).
    use_simulator: bool | None = None
    # Options of the simulator (``copy_seconds=3``, ``image_quota=10000``...), used in simulator mode; secret ones
    # (``access_key``, ``iam_password``...) reach it through its environment.
    simulator: dict[str, object] = field(default_factory=dict)
    # The simulator's projects; the first is the region's default and the account ``default``.
    simulator_project_ids: tuple[str, ...] = (services.SIMULATOR_PROJECT_ID,)
    # More simulator projects, each an account of its own besides ``default``: account name -> project ID
    # (the benchmarks spread work over many projects this way).
    simulator_accounts: dict[str, str] = field(default_factory=dict)
    # The region of such an account outside the simulator's first (one of ``simulator_regions``), by account name: a
    # project lives in one region (a distribution's receivers across regions); unnamed ones are in the first.
    simulator_account_regions: dict[str, str] = field(default_factory=dict)
    # More regions the simulator serves, each on a port of its own: every account can copy into them (their IMS
    # endpoint and the simulator's agency are in its settings; the project ID is looked up in IAM).
    simulator_regions: tuple[str, ...] = ()
    # Extra IMSREP_* settings for the services (short poll intervals in tests, say); applied last.
    env: dict[str, str] = field(default_factory=dict)
    # The worker processes ``start`` runs; beat and Flower can be left out (a test that needs neither).
    workers: tuple[WorkerSpec, ...] = (WorkerSpec(),)
    beat: bool = True
    flower: bool = True
    # Redis under Sentinel (a master, replicas, Sentinels) instead of one server; None: one server.
    sentinel: SentinelSpec | None = None
    ready_timeout: float = 60.0
    stop_grace: float = 15.0


# The stop grace of a stack whose state is thrown away (tests, benchmarks): an idle worker's soft shutdown sleeps its
# whole timeout (Celery's WorkController.wait_for_soft_shutdown, with worker_enable_soft_shutdown_on_idle), so a
# SIGKILL soon after the SIGTERM loses nothing that anyone reads and saves seconds per stack.
DISCARD_STOP_GRACE = 0.5


@dataclass
class StackInfo:
    """What a client needs to use the stack; this is the content of stack.json."""

    api_url: str
    api_token: str  # what the CLI uses: an operator of every account (or the configured admin token)
    flower_url: str
    flower_user: str
    flower_password: str
    redis_url: str  # never with a password in it
    state_dir: str
    log_dir: str
    redis_sentinel_master: str | None = None  # set when redis_url names Sentinels
    # The stack's own Redis: the files (0600) that hold its password and its Sentinels'.
    redis_password_file: str | None = None
    redis_sentinel_password_file: str | None = None
    simulator_url: str | None = None
    simulator_access_key: str | None = None
    simulator_secret_key: str | None = None
    simulator_project_id: str | None = None
    simulator_region: str | None = None
    simulator_regions: dict[str, str] = field(default_factory=dict)  # the other regions' endpoints
    admin_token: str | None = None  # an admin's: the audit trail (None in a stack.json of an earlier version)

    def redis_target(self, **options: Any) -> RedisTarget:
        """How a client of the stack (the tests, the benchmarks) reaches its Redis, passwords read from their files."""
        return RedisTarget(
            self.redis_url,
            self.redis_sentinel_master,
            password=read_password(self.redis_password_file),
            sentinel_password=read_password(self.redis_sentinel_password_file),
            **options,
        )


def read_stack_file(state_dir: Path) -> StackInfo | None:
    try:
        return StackInfo(**json.loads((state_dir / STACK_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def not_ready_reason(url: str) -> str | None:
    """None when ``url`` answers 200; otherwise why not, in a few words."""
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    if response.status_code == 200:
        return None
    try:
        body = response.json()
        return f"{response.status_code} {body.get('detail') or body.get('title') or ''}".strip()
    except (ValueError, AttributeError):
        return str(response.status_code)


def _refresh_flower(info: StackInfo) -> None:
    """Make Flower ask the (now running) workers for their queues: it learns queue names only from workers, and its
    first attempt came before the worker was up, so its Broker tab would show nothing but ``celery``."""
    auth = (info.flower_user, info.flower_password)
    response = httpx.get(f"{info.flower_url}/api/workers", params={"refresh": 1}, auth=auth, timeout=30)
    if response.status_code != 200:
        raise ServiceError(f"Flower refused its own credentials ({response.status_code}); see {info.log_dir}")


class LocalStack:
    def __init__(self, options: StackOptions, settings: Settings | None = None) -> None:
        self.options = options
        self.settings = settings or load_settings()
        self.state_dir = options.state_dir.resolve()
        self.log_dir = self.state_dir / "logs"
        auto = options.demo or not self.settings.accounts
        self.simulator_mode = auto if options.use_simulator is None else options.use_simulator
        # An explicitly configured Redis is used as it is; otherwise the stack runs its own, locked.
        self.own_redis = "redis_url" not in self.settings.model_fields_set
        self.passwords = stack_passwords(self.settings, own_redis=self.own_redis, sentinel=options.sentinel is not None)
        self.services: dict[str, Service] = {}  # what was started, by name, to restart it the same way
        self.processes: dict[str, ManagedProcess] = {}
        self.ports: dict[str, int] = {}
        token, admin_token, flower_password = self._secrets()
        simulator_keys = {"access_key": "AK" + secrets.token_hex(9).upper(), "secret_key": secrets.token_urlsafe(30)}
        simulator_keys.update({k: str(v) for k, v in options.simulator.items() if k in simulator_keys})
        self.info = StackInfo(
            api_url="",
            api_token=token,
            admin_token=admin_token,
            flower_url="",
            flower_user=self.settings.flower_user,
            flower_password=flower_password,
            redis_url=without_password(self.settings.redis_url),
            redis_sentinel_master=self.settings.redis_sentinel_master,
            state_dir=str(self.state_dir),
            log_dir=str(self.log_dir),
            simulator_access_key=simulator_keys["access_key"],
            simulator_secret_key=simulator_keys["secret_key"],
        )
        self._stack_file_written = False

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the whole stack ---------------------------------------------------------------------------------------

    def plan(self) -> list[Service]:
        """Every service ``start`` runs, in start order, with the command lines and environments it gives them."""
        planned: list[Service] = []
        if self.own_redis and self.options.sentinel is not None:
            planned.extend(self._sentinel_services(self.options.sentinel))
        elif self.own_redis:
            planned.append(self._redis_service())
        if self.simulator_mode:
            planned.append(self._simulator_service())
        settings = self.service_settings()
        for spec in self.options.workers:
            planned.append(services.worker(settings, spec.name, queues=spec.queues, concurrency=spec.concurrency))
        if self.options.beat:
            planned.append(services.beat(settings))
        planned.append(services.api(HOST, self.port("api")))
        self.info.api_url = f"http://{HOST}:{self.port('api')}"
        if self.options.flower:
            password_file = self._password_file(FLOWER_PASSWORD_FILE, self.info.flower_password)
            planned.append(services.flower(settings, HOST, self.port("flower"), password_file=password_file))
            self.info.flower_url = f"http://{HOST}:{self.port('flower')}"
        return planned

    def start(self) -> StackInfo:
        """Every service; returns once each answers, with stack.json written."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        self._refuse_taken_ports()
        if not self.settings.principals_file:
            self._principals_file()
        if not self.own_redis:
            self._check_configured_redis()
        for service in self.plan():
            if not service.data_store and self.options.sentinel is not None and self.own_redis:
                self.wait_topology()  # once, before the first service that uses Redis
            self.launch(service)
            if service.data_store:  # everything else needs it; the rest start side by side
                self.wait_ready([service.name])
        # The API is ready only once it has seen a worker and beat, so waiting on it covers them; without them, up is
        # up once the API answers.
        waits = [name for name, service in self.services.items() if service.ready and name != "api"]
        api = "api" if self.options.workers and self.options.beat else "api:healthz"
        self.wait_ready([*waits, api], watch=list(self.processes))
        if self.options.flower:
            _refresh_flower(self.info)
        self._write_stack_file()
        return self.info

    # -- one service at a time ---------------------------------------------------------------------------------

    def _redis_service(self) -> Service:
        data = services.private_dir(self.state_dir / "redis")
        self.info.redis_url = f"redis://{HOST}:{self.port('redis')}/0"
        self.info.redis_password_file = self._password_file(SERVER_PASSWORD_FILE, self.passwords.server)
        return services.redis("redis", HOST, self.port("redis"), data, password=self.passwords.server)

    def _password_file(self, name: str, password: str | None) -> str | None:
        return services.private_file(self.state_dir / name, password + "\n") if password else None

    def _sentinel_services(self, spec: SentinelSpec) -> list[Service]:
        """The master, its replicas and the Sentinels, each with a data directory of its own; the Sentinels'
        configurations are written afresh (a Sentinel rewrites its own as it learns the topology)."""
        master = (HOST, self.port("redis"))
        planned = [self._redis_service()]
        password = self.passwords.server
        for n in range(1, spec.replicas + 1):
            name = f"redis-replica-{n}"
            data = services.private_dir(self.state_dir / name)
            planned.append(services.redis_replica(name, HOST, self.port(name), data, master, password=password))
        config = services.sentinel_config(
            spec.master,
            master,
            spec.sentinels // 2 + 1,
            spec.down_after_ms,
            spec.failover_timeout_ms,
            redis_password=password,
            password=self.passwords.sentinel,
        )
        for n in range(1, spec.sentinels + 1):
            name = f"sentinel-{n}"
            # A directory only its owner enters: Sentinel rewrites its configuration (passwords included) mode 0644.
            path = Path(services.private_file(services.private_dir(self.state_dir / name) / "sentinel.conf", config))
            planned.append(services.sentinel(name, HOST, self.port(name), path))
        self.info.redis_sentinel_password_file = self._password_file(SENTINEL_PASSWORD_FILE, self.passwords.sentinel)
        nodes = ";".join(f"sentinel://{HOST}:{self.port(f'sentinel-{n}')}" for n in range(1, spec.sentinels + 1))
        self.info.redis_url = f"{nodes}/0"
        self.info.redis_sentinel_master = spec.master
        return planned

    def wait_topology(self, timeout: float | None = None) -> None:
        """Until every Sentinel knows the master, every replica (up, its link to the master up) and the other
        Sentinels: before that, a failover could find no replica to promote."""
        spec = self.options.sentinel
        assert spec is not None
        deadline = time.monotonic() + (self.options.ready_timeout if timeout is None else timeout)
        reason = "not asked yet"
        while time.monotonic() < deadline:
            reason = self._topology_not_ready(spec)
            if reason is None:
                return
            time.sleep(0.1)
        raise ServiceError(f"Sentinel topology not ready: {reason}; logs in {self.log_dir}")

    def _topology_not_ready(self, spec: SentinelSpec) -> str | None:
        replicas = [name for name in self.services if name.startswith("redis-replica-")]
        try:
            masters = []
            for name in ("redis", *replicas):
                state = topology.replication(HOST, self.port(name), self.passwords.server)
                if state.role == "slave" and not state.link_up:
                    return f"{name} has not synced with the master yet"
                if state.role == "master":
                    masters.append(name)
            # A failed master started again comes back a master of its own, stale data and all, until Sentinel
            # turns it into a replica (about 8 s later): Sentinels count it among the replicas meanwhile.
            if len(masters) > 1:
                return f"{' and '.join(masters)} both say they are the master"
            for n in range(1, spec.sentinels + 1):
                view = topology.sentinel_view(HOST, self.port(f"sentinel-{n}"), spec.master, self.passwords.sentinel)
                if view.master is None or len(view.replicas_up) < spec.replicas:
                    return f"sentinel-{n} knows {len(view.replicas_up)} of {spec.replicas} replicas"
                if view.other_sentinels < spec.sentinels - 1:
                    return f"sentinel-{n} knows {view.other_sentinels} of {spec.sentinels - 1} other Sentinels"
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def redis_master(self) -> str | None:
        """The service that is master now, as the Sentinels say (the stack's own Sentinel topology); None while
        they name none of the stack's servers."""
        spec = self.options.sentinel
        assert spec is not None
        for n in range(1, spec.sentinels + 1):
            name = f"sentinel-{n}"
            if name not in self.processes or not self.processes[name].running():
                continue
            try:
                view = topology.sentinel_view(HOST, self.port(name), spec.master, self.passwords.sentinel)
            except redis.RedisError:
                continue
            for service in self.services:
                if view.master == (HOST, self.ports.get(service)):
                    return service
        return None

    def _simulator_service(self) -> Service:
        port = self.port("simulator")
        project_ids = [*self.options.simulator_project_ids, *self._account_projects()]
        keys = {"access_key": self.info.simulator_access_key, "secret_key": self.info.simulator_secret_key}
        self.info.simulator_url = f"http://{HOST}:{port}"
        self.info.simulator_project_id = project_ids[0]
        self.info.simulator_region = services.SIMULATOR_REGION
        regions = {region: self.port(f"simulator-{region}") for region in self.options.simulator_regions}
        self.info.simulator_regions = {region: f"http://{HOST}:{p}" for region, p in regions.items()}
        return services.simulator(HOST, port, project_ids, regions=regions, **{**self.options.simulator, **keys})

    def start_redis(self) -> str:
        """The stack's own Redis (AOF in ``<state dir>/redis``), or with ``sentinel`` in the options its master,
        replicas and Sentinels, ready to fail over; returns the URL the services are given."""
        if self.options.sentinel is None:
            self.launch(self._redis_service())
            self.wait_ready(["redis"])
            return self.info.redis_url
        for service in self._sentinel_services(self.options.sentinel):
            self.launch(service)
            self.wait_ready([service.name])
        self.wait_topology()
        return self.info.redis_url

    def _account_projects(self) -> list[str]:
        """The simulator accounts' projects as ``--project-id`` values: plain in the first region, ``REGION=ID`` in
        another, after that region's own default project (the one the source account's cross-region copies land in,
        looked up in IAM by the region's name), which a receiver's project must not displace."""
        placed = self.options.simulator_account_regions
        unknown = sorted(set(placed.values()) - set(self.options.simulator_regions))
        if unknown:
            raise ServiceError(f"simulator_account_regions names regions the simulator does not serve: {unknown}")
        projects = [pid for name, pid in self.options.simulator_accounts.items() if name not in placed]
        for region in dict.fromkeys(placed.values()):
            projects.append(f"{region}={default_project_id_for(region)}")
            projects += [f"{region}={self.options.simulator_accounts[n]}" for n, r in placed.items() if r == region]
        return projects

    def start_simulator(self, *, wait: bool = True) -> StackInfo:
        """The simulator (random AK/SK unless the options give them); the info says how to reach it. ``wait=False``
        returns at once, the process still starting: ``wait_ready(["simulator"])`` before using it."""
        self.launch(self._simulator_service())
        if wait:
            self.wait_ready(["simulator"])
        return self.info

    def start_worker(
        self, name: str = "worker", *, queues: Sequence[str] | None = None, concurrency: int | None = None
    ) -> ManagedProcess:
        """One more worker process, ``name`` (its Celery node is ``<name>@<host>``), or one stopped before again."""
        return self.launch(services.worker(self.service_settings(), name, queues=queues, concurrency=concurrency))

    def launch(self, service: Service) -> ManagedProcess:
        """Start ``service`` (replacing a stopped one of the same name) with the stack's environment under its own."""
        previous = self.processes.get(service.name)
        if previous is not None and previous.running():
            raise ServiceError(f"{service.name} is already running")
        env = {**self.service_env(), **service.env} if service.app else dict(service.env)
        proc = ManagedProcess(service.name, service.argv, self.log_dir / f"{service.name}.log", env=env)
        self.services[service.name] = service
        self.processes[service.name] = proc  # before it starts: an interrupt from here on still stops it
        return proc.start()

    def restart(self, name: str) -> ManagedProcess:
        """Start a stopped or killed service again exactly as before: same command line, port and data directory
        (Redis replays its AOF and answers LOADING until done)."""
        proc = self.launch(self.services[name])
        if self.services[name].ready or self.services[name].data_store:
            self.wait_ready([name])
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL the service's whole process group (a Celery worker and its pool children), as a crash would."""
        proc = self.processes[name]
        proc.signal_group(signal.SIGKILL)
        proc.wait(timeout=10)

    def pause(self, name: str) -> None:
        """SIGSTOP the service's process group: it holds its connections but answers nothing, as a host cut off by
        a network partition would."""
        self.processes[name].signal_group(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT a paused service: the partition heals."""
        self.processes[name].signal_group(signal.SIGCONT)

    def stop_service(self, name: str, timeout: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (default: the stack's grace period)."""
        self.processes[name].stop(self.options.stop_grace if timeout is None else timeout)

    def port(self, name: str) -> int:
        """The service's port: the one asked for (refused when taken) or a free one; the same on a restart."""
        if name not in self.ports:
            self.ports[name] = self._port(name, self.options.ports.get(name, 0))
        return self.ports[name]

    def _port(self, name: str, port: int) -> int:
        if port == 0:
            return free_port(HOST)
        if tcp_open(HOST, port):
            raise ServiceError(_ports_taken({name: port}))
        return port

    def _refuse_taken_ports(self) -> None:
        """Every fixed port the stack would listen on that something else holds, named at once (not one per try)."""
        runs = {"redis": self.own_redis, "simulator": self.simulator_mode, "api": True, "flower": self.options.flower}
        wanted = {name for name, yes in runs.items() if yes}
        taken = {
            name: port
            for name, port in self.options.ports.items()
            if name in wanted and port and name not in self.ports and tcp_open(HOST, port)
        }
        if taken:
            raise ServiceError(_ports_taken(taken))

    def _check_configured_redis(self, timeout: float = 5.0) -> None:
        """A Redis given by IMSREP_REDIS_URL must answer before anything starts: otherwise every service would wait
        on it in silence and ``up`` would only time out, the cause in the services' logs."""
        nodes = redis_nodes(self.settings.redis_url)
        where = ", ".join(f"{host}:{port}" for host, port in nodes.hosts)
        deadline = time.monotonic() + timeout
        data = open_data_layer(redis_target(self.settings), "ready")
        try:
            while True:
                try:
                    data.ping()
                    return
                except redis.BusyLoadingError:
                    return  # it answers; the services wait for the load like any other
                except redis.RedisError as exc:
                    if time.monotonic() >= deadline:
                        raise ServiceError(
                            f"the Redis that {ENV_PREFIX}REDIS_URL names ({where}) does not answer: "
                            f"{type(exc).__name__}: {str(exc).rstrip('.')}; start it, correct {ENV_PREFIX}REDIS_URL, "
                            "or unset it (and REDIS_URL) so that imsrep up runs a Redis of its own"
                        ) from None
                    time.sleep(0.2)
        finally:
            data.close()

    # -- readiness and supervision -----------------------------------------------------------------------------

    def wait_ready(self, names: Sequence[str], watch: Sequence[str] | None = None) -> None:
        """Until every named service is ready (``api:healthz``: the API answers, with or without a worker); fail
        early, with its log, if one of them (or of ``watch``) exits meanwhile."""
        deadline = time.monotonic() + self.options.ready_timeout
        pending = list(names)
        watched = [self.processes[name.split(":")[0]] for name in (watch or names)]
        reasons: dict[str, str | None] = {}
        while True:
            for proc in watched:
                if not proc.running():
                    raise ServiceError(f"{proc.name} exited during start-up; see {proc.log_path}:\n{proc.log_tail(15)}")
            reasons = {name: self._not_ready(name) for name in pending}
            pending = [name for name in pending if reasons[name] is not None]
            if not pending:
                return
            if time.monotonic() >= deadline:
                waiting = "; ".join(f"{name} ({reasons[name]})" for name in pending)
                timeout = self.options.ready_timeout
                raise ServiceError(f"not ready after {timeout:.0f}s: {waiting}; logs in {self.log_dir}")
            time.sleep(0.1)

    def _not_ready(self, name: str) -> str | None:
        if name == "api:healthz":
            return not_ready_reason(f"{self.info.api_url}/healthz")
        if self.services[name].data_store:
            # A PING needs no key; a Sentinel asks for its own password, a server for the servers'.
            password = self.passwords.sentinel if name.startswith("sentinel-") else self.passwords.server
            target = RedisTarget(f"redis://{HOST}:{self.port(name)}/0", password=password)
            data = open_data_layer(target, "ready")
            try:
                data.ping()
            except redis.RedisError as exc:
                return type(exc).__name__  # BusyLoadingError while the AOF is replayed
            finally:
                data.close()
            return None
        ready = self.services[name].ready
        return None if ready is None else not_ready_reason(ready)

    def running(self) -> list[str]:
        return [name for name, proc in self.processes.items() if proc.running()]

    def supervise(self, interval: float = 0.5) -> ManagedProcess:
        """Block while every service runs; return the first one that exits."""
        while True:
            for proc in self.processes.values():
                if not proc.running():
                    return proc
            time.sleep(interval)

    def stop(self) -> None:
        """SIGTERM every service group at once, SIGKILL what is left after the grace period; data stores last."""
        procs = list(self.processes.values())
        stores = [p for p in procs if self.services[p.name].data_store]
        for group in ([p for p in procs if p not in stores], stores):
            for proc in group:
                proc.signal_group(signal.SIGCONT)  # a paused service could not act on SIGTERM
                proc.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + self.options.stop_grace
            for proc in group:
                proc.stop(timeout=max(0.0, deadline - time.monotonic()))
        self.processes.clear()
        if self._stack_file_written:
            (self.state_dir / STACK_FILE).unlink(missing_ok=True)
            self._stack_file_written = False

    # -- what the services are given ---------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, str, str]:
        """The CLI's token, the admin's and the Flower password: the configured admin token (for both), or strong
        random ones, the CLI's an operator's (always for the demo); the configured Flower password, or a random one."""
        configured = not self.options.demo
        tokens = self.settings.api_tokens if configured else []
        if tokens:
            token = admin = tokens[0].get_secret_value()
        else:
            token, admin = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        password = self.settings.flower_password.get_secret_value() if configured else ""
        return token, admin, password or secrets.token_urlsafe(18)

    def service_settings(self) -> Settings:
        """The settings the services run with (this stack's Redis, state directory and Flower credentials, and the
        options' settings), from which their command lines are built."""
        values = self.settings.model_dump()
        values.update(
            redis_url=self.info.redis_url,
            redis_sentinel_master=self.info.redis_sentinel_master,
            redis_password=self.passwords.server,
            redis_sentinel_password=self.passwords.sentinel,
            state_dir=self.state_dir,
            flower_user=self.info.flower_user,
            flower_password=self.info.flower_password,
        )
        for key, value in self.options.env.items():
            name = key.removeprefix(ENV_PREFIX).lower()
            if key.startswith(ENV_PREFIX) and name in Settings.model_fields:
                values[name] = value
        return Settings.model_validate(values)

    def service_env(self) -> dict[str, str | None]:
        """The environment of the API, workers, beat and Flower: the stack's Redis, state directory and secrets,
        the simulator's accounts in simulator mode, and the options' settings last."""
        env: dict[str, str | None] = {
            f"{ENV_PREFIX}REDIS_URL": self.info.redis_url,
            f"{ENV_PREFIX}REDIS_SENTINEL_MASTER": self.info.redis_sentinel_master,
            f"{ENV_PREFIX}STATE_DIR": self.info.state_dir,
            f"{ENV_PREFIX}FLOWER_USER": self.info.flower_user,
            # Flower's password is Flower's alone: it reads it from its file (plan).
            f"{ENV_PREFIX}FLOWER_PASSWORD": None,
            f"{ENV_PREFIX}FLOWER_PASSWORD_FILE": None,
        }
        ca_file = self.settings.redis_tls_ca_file
        env[f"{ENV_PREFIX}REDIS_TLS_CA_FILE"] = str(ca_file.resolve()) if ca_file else None
        env[f"{ENV_PREFIX}REDIS_SENTINEL_TLS"] = "true" if self.settings.redis_sentinel_tls else None
        # In the environment, never on a command line; read from files or not, the services get the passwords here.
        passwords = {"REDIS_PASSWORD": self.passwords.server, "REDIS_SENTINEL_PASSWORD": self.passwords.sentinel}
        for name, password in passwords.items():
            env[f"{ENV_PREFIX}{name}"] = password
            env[f"{ENV_PREFIX}{name}_FILE"] = None
        if self.options.demo or not self.settings.api_tokens:
            # The CLI's token is an operator's, of every account: it submits, cancels, retries and deletes, and
            # checks accounts; the audit trail takes the admin's.
            env[f"{ENV_PREFIX}API_TOKENS"] = self.info.admin_token
            env[f"{ENV_PREFIX}PRINCIPALS__{LOCAL_PRINCIPAL.upper()}__TOKEN"] = self.info.api_token
            env[f"{ENV_PREFIX}PRINCIPALS__{LOCAL_PRINCIPAL.upper()}__ROLE"] = Role.OPERATOR.value
            env[f"{ENV_PREFIX}PRINCIPALS__{LOCAL_PRINCIPAL.upper()}__ACCOUNTS"] = EVERY_ACCOUNT
            # The stack's own operator, as little held back as the settings allow: the teams' limits are for teams.
            for field, most in LOCAL_LIMITS.items():
                env[f"{ENV_PREFIX}PRINCIPALS__{LOCAL_PRINCIPAL.upper()}__{field.upper()}"] = str(most)
        if not self.settings.principals_file:
            env[f"{ENV_PREFIX}PRINCIPALS_FILE"] = str(self.state_dir / PRINCIPALS_FILE)
        if self.options.demo:
            env[f"{ENV_PREFIX}DEMO"] = "true"
        if self.simulator_mode and self.info.simulator_url:
            env.update(self.simulator_account_env())
        env.update(self.options.env)
        return env

    def simulator_account_env(self) -> dict[str, str | None]:
        """One account per simulator project, with the simulator's AK/SK; every inherited account is dropped, as in
        simulator mode the accounts are the simulator's."""
        info = self.info
        env: dict[str, str | None] = {
            k: None for k in os.environ if k.startswith(f"{ENV_PREFIX}ACCOUNTS") or k == f"{ENV_PREFIX}DEFAULT_ACCOUNT"
        }
        projects = {"default": info.simulator_project_id, **self.options.simulator_accounts}
        # Each account may share with the simulator's other projects (examples/ shares with one); its copy_regions
        # are left to their default, the regions configured below.
        members = self.options.simulator_project_ids
        assert info.simulator_region is not None and info.simulator_url is not None
        endpoints = {info.simulator_region: info.simulator_url, **info.simulator_regions}
        for name, project_id in projects.items():
            acct = f"{ENV_PREFIX}ACCOUNTS__{name.upper()}__"
            # An account is served by its region's port; IAM answers on any of them.
            home = self.options.simulator_account_regions.get(name, info.simulator_region)
            env.update(
                {
                    f"{acct}REGION": home,
                    f"{acct}PROJECT_ID": project_id,
                    f"{acct}IMS_ENDPOINT": endpoints[home],
                    f"{acct}KMS_ENDPOINT": endpoints[home],
                    f"{acct}IAM_ENDPOINT": info.simulator_url,
                    f"{acct}ACCESS_KEY": info.simulator_access_key,
                    f"{acct}SECRET_KEY": info.simulator_secret_key,
                }
            )
            for region, endpoint in endpoints.items():
                if region != home:
                    env[f"{acct}REGIONS__{region.upper().replace('-', '_')}__IMS_ENDPOINT"] = endpoint
            if info.simulator_regions:
                env[f"{acct}AGENCY_NAME"] = services.SIMULATOR_AGENCY
            if shared := [p for p in members if p != project_id]:
                env[f"{acct}SHARE_PROJECTS"] = ",".join(shared)
        env[f"{ENV_PREFIX}DEFAULT_ACCOUNT"] = "default"
        return env

    def _principals_file(self) -> None:
        """The stack's principals file, kept across restarts (what teams were given stays valid); begun with a
        commented example."""
        path = self.state_dir / PRINCIPALS_FILE
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # a plain token may be put in it
            with os.fdopen(fd, "w") as f:
                f.write(PRINCIPALS_HEADER)

    def _write_stack_file(self) -> None:
        # It holds the API token and the Flower password; readers poll for it while up starts.
        private_file(self.state_dir / STACK_FILE, json.dumps(asdict(self.info), indent=2))
        self._stack_file_written = True


def _ports_taken(taken: dict[str, int]) -> str:
    listed = ", ".join(f"{port} ({name}; --{name}-port)" for name, port in taken.items())
    return f"already in use: {listed}; stop what listens there or choose other ports with the options named"


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so ``imsrep up`` stops its services cleanly either way. SIGINT is set explicitly
    too: a shell starts background jobs with it ignored, and ``kill -INT`` must still stop the stack."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
