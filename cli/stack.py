"""The local stack: Redis, the simulator, the API, a worker, beat and Flower as one supervised set of processes.

One place for ``imsrep up``, ``imsrep demo``, the integration tests and the benchmarks, so all of them run exactly
what a user runs. Each service is a process group of its own (``cli.processes``); the stack starts them, waits until
each answers, writes their addresses and credentials to ``<state dir>/stack.json`` (mode 0600), watches them, and
stops them all: SIGTERM to every group, SIGKILL after a grace period, Redis last so in-flight acks still land.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from cli import services
from cli.processes import ManagedProcess, ServiceError, free_port, python_module, redis_process, tcp_open
from config.settings import ENV_PREFIX, Settings, load_settings
from worker.run import WORKER_ENV

HOST = "127.0.0.1"
STACK_FILE = "stack.json"


@dataclass
class StackOptions:
    state_dir: Path
    # A port of 0 means "any free port" (tests); ``imsrep up`` uses services.DEFAULT_PORTS.
    ports: dict[str, int] = field(default_factory=lambda: dict.fromkeys(services.DEFAULT_PORTS, 0))
    # Demo mode: always the simulator, always fresh random secrets, IMSREP_DEMO=true for the services.
    demo: bool = False
    # Run the simulator: None decides by the settings (yes when no account is configured).
    use_simulator: bool | None = None
    # Options of the simulator (``copy_seconds=3``, ``image_quota=10000``...), used in simulator mode.
    simulator: dict[str, object] = field(default_factory=dict)
    # More simulator projects, each an account of its own besides ``default``: account name -> project ID
    # (the benchmarks spread work over many projects this way).
    simulator_accounts: dict[str, str] = field(default_factory=dict)
    # Extra IMSREP_* settings for the services (short poll intervals in tests, say).
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 60.0
    stop_grace: float = 15.0


@dataclass
class StackInfo:
    """What a client needs to use the stack; this is the content of stack.json."""

    api_url: str
    api_token: str
    flower_url: str
    flower_user: str
    flower_password: str
    redis_url: str
    state_dir: str
    log_dir: str
    simulator_url: str | None = None
    simulator_access_key: str | None = None
    simulator_secret_key: str | None = None
    simulator_project_id: str | None = None
    simulator_region: str | None = None


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
        return f"{response.status_code} {response.json().get('message', '')}".strip()
    except ValueError:
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
        # An explicitly configured Redis is used as it is; otherwise the stack runs its own.
        self.own_redis = "redis_url" not in self.settings.model_fields_set
        self.processes: list[ManagedProcess] = []
        self.info: StackInfo | None = None

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------------------------------

    def start(self) -> StackInfo:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ports = {name: self._port(name, port) for name, port in self.options.ports.items()}
        redis_url = self._start_redis(ports["redis"])
        token, flower_password = self._secrets()
        info = StackInfo(
            api_url=f"http://{HOST}:{ports['api']}",
            api_token=token,
            flower_url=f"http://{HOST}:{ports['flower']}",
            flower_user=self.settings.flower_user,
            flower_password=flower_password,
            redis_url=redis_url,
            state_dir=str(self.state_dir),
            log_dir=str(self.log_dir),
        )
        env = self._service_env(info)
        waits: list[tuple[ManagedProcess, str]] = []
        if self.simulator_mode:
            sim = self._start_simulator(ports["simulator"], info)
            env.update(self._simulator_account_env(info))
            waits.append((sim, f"{info.simulator_url}/_sim/health"))
        self._run("worker", services.worker_args(), {**env, **WORKER_ENV})
        self._run("beat", services.beat_args(self.state_dir / "celerybeat-schedule"), env)
        api = self._run("api", services.api_args(HOST, ports["api"]), env)
        flower = self._run(
            "flower",
            services.flower_args(redis_url, HOST, ports["flower"], self.state_dir / "flower.db"),
            services.flower_env(info.flower_user, info.flower_password),
        )
        # The API is ready only once it has seen a worker, so waiting on it covers the worker too.
        waits += [(flower, f"{info.flower_url}/healthcheck"), (api, f"{info.api_url}/readyz")]
        self._wait_ready(waits)
        _refresh_flower(info)
        self._write_stack_file(info)
        self.info = info
        return info

    def _wait_ready(self, waits: list[tuple[ManagedProcess, str]]) -> None:
        """Until every URL answers 200; fail early, with its log, if any service exits meanwhile."""
        deadline = time.monotonic() + self.options.ready_timeout
        pending = {proc.name: url for proc, url in waits}
        while True:
            self._raise_if_dead()
            reasons = {name: not_ready_reason(url) for name, url in pending.items()}
            pending = {name: pending[name] for name, reason in reasons.items() if reason is not None}
            if not pending:
                return
            if time.monotonic() >= deadline:
                waiting = "; ".join(f"{name} ({reasons[name]})" for name in pending)
                timeout = self.options.ready_timeout
                raise ServiceError(f"not ready after {timeout:.0f}s: {waiting}; logs in {self.log_dir}")
            time.sleep(0.1)

    def _raise_if_dead(self) -> None:
        for proc in self.processes:
            if not proc.running():
                raise ServiceError(f"{proc.name} exited during start-up; see {proc.log_path}:\n{proc.log_tail(15)}")

    def _port(self, name: str, port: int) -> int:
        if port == 0:
            return free_port(HOST)
        if tcp_open(HOST, port):
            raise ServiceError(f"port {port} for {name} is already in use; choose another with --{name}-port")
        return port

    def _start_redis(self, port: int) -> str:
        if not self.own_redis:
            return self.settings.redis_url
        proc = redis_process(port, self.state_dir / "redis", self.log_dir)
        self.processes.append(proc.start())
        proc.wait_ready(lambda: tcp_open(HOST, port), timeout=20)
        return f"redis://{HOST}:{port}/0"

    def _secrets(self) -> tuple[str, str]:
        """The API token and Flower password: the configured ones, or strong random ones (always for the demo)."""
        configured = not self.options.demo
        tokens = self.settings.api_tokens if configured else []
        token = tokens[0].get_secret_value() if tokens else secrets.token_urlsafe(24)
        password = self.settings.flower_password.get_secret_value() if configured else ""
        return token, password or secrets.token_urlsafe(18)

    def _service_env(self, info: StackInfo) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            f"{ENV_PREFIX}REDIS_URL": info.redis_url,
            f"{ENV_PREFIX}STATE_DIR": info.state_dir,
            f"{ENV_PREFIX}FLOWER_USER": info.flower_user,
            f"{ENV_PREFIX}FLOWER_PASSWORD": info.flower_password,
        }
        if self.options.demo or not self.settings.api_tokens:
            env[f"{ENV_PREFIX}API_TOKENS"] = info.api_token
        if self.options.demo:
            env[f"{ENV_PREFIX}DEMO"] = "true"
        env.update(self.options.env)
        return env

    def _start_simulator(self, port: int, info: StackInfo) -> ManagedProcess:
        info.simulator_url = f"http://{HOST}:{port}"
        info.simulator_access_key = "AK" + secrets.token_hex(9).upper()
        info.simulator_secret_key = secrets.token_urlsafe(30)
        info.simulator_project_id = services.SIMULATOR_PROJECT_ID
        info.simulator_region = services.SIMULATOR_REGION
        extra = list(self.options.simulator_accounts.values())
        args = services.simulator_args(HOST, port, extra_project_ids=extra, **self.options.simulator)
        keys = services.simulator_env(info.simulator_access_key, info.simulator_secret_key)
        return self._run("simulator", args, keys)

    def _simulator_account_env(self, info: StackInfo) -> dict[str, str | None]:
        # Drop every inherited account setting: in simulator mode the one account is the simulator's.
        env: dict[str, str | None] = {
            k: None for k in os.environ if k.startswith(f"{ENV_PREFIX}ACCOUNTS") or k == f"{ENV_PREFIX}DEFAULT_ACCOUNT"
        }
        projects = {"default": info.simulator_project_id, **self.options.simulator_accounts}
        for name, project_id in projects.items():
            acct = f"{ENV_PREFIX}ACCOUNTS__{name.upper()}__"
            env.update(
                {
                    f"{acct}REGION": info.simulator_region,
                    f"{acct}PROJECT_ID": project_id,
                    f"{acct}IMS_ENDPOINT": info.simulator_url,
                    f"{acct}KMS_ENDPOINT": info.simulator_url,
                    f"{acct}IAM_ENDPOINT": info.simulator_url,
                    f"{acct}ACCESS_KEY": info.simulator_access_key,
                    f"{acct}SECRET_KEY": info.simulator_secret_key,
                }
            )
        env[f"{ENV_PREFIX}DEFAULT_ACCOUNT"] = "default"
        return env

    def _run(self, name: str, args: list[str], env: dict[str, str | None]) -> ManagedProcess:
        proc = ManagedProcess(name, python_module(*args), self.log_dir / f"{name}.log", env=env).start()
        self.processes.append(proc)
        return proc

    def _write_stack_file(self, info: StackInfo) -> None:
        path = self.state_dir / STACK_FILE
        # Created 0600 from the start: it holds the API token and the Flower password.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(info), f, indent=2)

    # -- run and stop ------------------------------------------------------------------------------------------

    def supervise(self, interval: float = 0.5) -> ManagedProcess:
        """Block while every service runs; return the first one that exits."""
        while True:
            for proc in self.processes:
                if not proc.running():
                    return proc
            time.sleep(interval)

    def stop(self) -> None:
        """SIGTERM every service group at once, SIGKILL what is left after the grace period; Redis last."""
        services_ = [p for p in self.processes if p.name != "redis"]
        redis_ = [p for p in self.processes if p.name == "redis"]
        for group in (services_, redis_):
            for proc in group:
                proc.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + self.options.stop_grace
            for proc in group:
                proc.stop(timeout=max(0.0, deadline - time.monotonic()))
        self.processes.clear()
        if self.info is not None:
            (self.state_dir / STACK_FILE).unlink(missing_ok=True)
            self.info = None


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
