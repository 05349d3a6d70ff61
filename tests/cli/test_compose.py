"""docker-compose.yml agrees with the code: the same commands as ``LocalStack`` for any value of the settings they
carry, real settings, matching ports and queues, a durable pinned Redis, healthchecks, log rotation; and
``docker-compose config`` accepts it when the tool is installed."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tomllib

from cli import services
from config.settings import ENV_PREFIX, AccountSettings, Settings, names_secret, redis_nodes
from simulator.cli import simulator_command
from tests.support import debian_package
from worker.queues import ALL_QUEUES
from worker.run import WORKER_ENV

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BROKER = "redis://redis:6379/0"
PYTHON_SERVICES = ("api", "worker", "beat", "flower", "simulator")
SECRETS = {"IMSREP_API_TOKENS": "compose-check-token", "IMSREP_FLOWER_PASSWORD": "compose-check-password"}
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``, applied to every string."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, other = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise AssertionError(f"compose refuses to start without {name}: {other}")
        return other or ""

    return _VARIABLE.sub(one, value)


def rendered(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The services as compose runs them with ``env`` in the shell (plus the two required secrets)."""
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return interpolate(raw, {**SECRETS, **(env or {})})["services"]


@pytest.fixture(scope="module")
def compose() -> dict[str, dict[str, Any]]:
    return rendered()


RUN_SECRETS = "/run/secrets/"  # where a container finds the compose file's secrets
REDIS_SECRET = f"{RUN_SECRETS}redis_password"


def _settings(environment: dict[str, str]) -> Settings:
    """The settings a compose service reads from its environment (its secrets in a folder of their own here)."""
    with tempfile.TemporaryDirectory() as secrets:
        Path(secrets, "redis_password").write_text("compose-check-redis-password\n")
        given = {k: v.replace(RUN_SECRETS, f"{secrets}/") for k, v in environment.items() if k.startswith(ENV_PREFIX)}
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k != "REDIS_URL"}
        with mock.patch.dict(os.environ, {**inherited, **given}, clear=True):
            return Settings()


def _commands(svc: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    settings = _settings(svc["worker"]["environment"])
    return {
        "api": services.api("0.0.0.0", 8000, python="python").argv,
        "worker": services.worker(settings, python="python").argv,
        "beat": services.beat(settings, python="python").argv,
        "flower": services.flower(settings, "0.0.0.0", 5555, python="python").argv,
        "simulator": services.simulator("0.0.0.0", 8780, python="python").argv,
    }


def test_commands_are_the_local_stacks(compose: dict[str, Any]) -> None:
    for name, argv in _commands(compose).items():
        assert compose[name]["command"] == argv, name
    assert compose["simulator"]["profiles"] == ["simulator"]


# Each setting a launcher turns into a command-line flag or a service's environment, with a value that is not its
# default: compose and ``imsrep up`` must both carry it.
LAUNCHER_SETTINGS = {
    "IMSREP_WORKER_CONCURRENCY": "7",
    "IMSREP_REDIS_URL": "redis://redis.internal:6380/2",  # its password: the secret
    "IMSREP_FLOWER_USER": "ops",
    "IMSREP_LOG_LEVEL": "DEBUG",
    "IMSREP_LOG_FORMAT": "json",
}


@pytest.mark.parametrize(("variable", "value"), LAUNCHER_SETTINGS.items())
def test_every_launcher_setting_reaches_the_compose_services(variable: str, value: str) -> None:
    svc = rendered({variable: value})
    for name, argv in _commands(svc).items():
        assert svc[name]["command"] == argv, name
    for name in ("api", "worker", "beat"):
        assert svc[name]["environment"][variable] == value, name
    flower = svc["flower"]
    assert flower["environment"]["IMSREP_REDIS_URL"] == svc["api"]["environment"]["IMSREP_REDIS_URL"]
    user = svc["api"]["environment"]["IMSREP_FLOWER_USER"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == f"{user}:{SECRETS['IMSREP_FLOWER_PASSWORD']}"


def test_the_worker_command_follows_the_concurrency_setting() -> None:
    worker = rendered({"IMSREP_WORKER_CONCURRENCY": "7"})["worker"]["command"]
    assert worker[worker.index("--concurrency") + 1] == "7"
    default = rendered()["worker"]["command"]
    assert default[default.index("--concurrency") + 1] == str(Settings.model_fields["worker_concurrency"].default)


def test_flower_follows_the_redis_url_and_keeps_it_off_its_command_line() -> None:
    url = LAUNCHER_SETTINGS["IMSREP_REDIS_URL"]
    flower = rendered({"IMSREP_REDIS_URL": url})["flower"]
    assert flower["environment"]["IMSREP_REDIS_URL"] == url
    assert not any("redis://" in arg for arg in flower["command"])
    assert rendered()["flower"]["environment"]["IMSREP_REDIS_URL"] == BROKER


def test_the_commands_name_modules_that_import() -> None:
    for target in (services.API_APP, "worker.celery_app:app"):
        module, attribute = target.split(":")
        assert hasattr(importlib.import_module(module), attribute), target
    assert importlib.import_module(services.FLOWER_CONFIG).task_queues


def test_the_worker_consumes_every_queue(compose: dict[str, Any]) -> None:
    worker = compose["worker"]
    command = worker["command"]
    assert command[command.index("-Q") + 1].split(",") == ALL_QUEUES
    assert "-E" in command  # task events, for Flower
    assert "--without-mingle" in command  # as worker.run.worker_argv
    assert WORKER_ENV.items() <= worker["environment"].items()
    assert worker["environment"]["IMSREP_REDIS_URL"] == BROKER


def test_every_imsrep_variable_is_a_real_setting() -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    simulator_options = set(inspect.signature(simulator_command).parameters)
    checked = 0
    for service, svc in raw.items():
        for name in svc.get("environment") or {}:
            if name.startswith(f"{ENV_PREFIX}SIM_"):
                assert service == "simulator" and name.removeprefix(f"{ENV_PREFIX}SIM_").lower() in simulator_options
            elif name.startswith(f"{ENV_PREFIX}ACCOUNTS__"):
                account, field = name.removeprefix(f"{ENV_PREFIX}ACCOUNTS__").split("__")
                assert re.fullmatch(r"[A-Z0-9_]+", account) and field.lower() in AccountSettings.model_fields, name
            elif name.startswith(ENV_PREFIX):
                setting = name.removeprefix(ENV_PREFIX).lower()
                secret_file = setting.endswith("_file") and names_secret(setting.removesuffix("_file").split("__"))
                assert setting in Settings.model_fields or secret_file, name  # a secret's file: config.settings
            else:
                assert (service, name) in {("flower", "FLOWER_BASIC_AUTH"), ("worker", "REMAP_SIGTERM")}, name
            checked += 1
    assert checked > 20


def test_secrets_are_required_not_defaulted() -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    env = raw["api"]["environment"]
    assert env["IMSREP_API_TOKENS"].startswith("${IMSREP_API_TOKENS:?")
    assert env["IMSREP_FLOWER_PASSWORD"].startswith("${IMSREP_FLOWER_PASSWORD:?")
    assert "${IMSREP_FLOWER_PASSWORD:?" in raw["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    for service in ("api", "worker", "beat"):
        assert raw[service]["environment"]["IMSREP_REDIS_URL"].startswith("${IMSREP_REDIS_URL:-")


def _requires_the_secret(services: dict[str, dict[str, Any]]) -> None:
    """Redis, its replica and the Sentinels ask for the password of the secret redis_password, which no command line
    or environment holds, and the services read it from the same secret."""
    for name in ("redis", "redis-replica"):
        script = services[name]["command"][2]
        assert 'requirepass "%s"\\nmasterauth "%s"' in script and script.count(f"$(cat {REDIS_SECRET})") == 2
        assert "exec docker-entrypoint.sh valkey-server /tmp/auth.conf" in script  # it drops to the user valkey
        assert f"--askpass ping < {REDIS_SECRET} | grep -q PONG" in services[name]["healthcheck"]["test"][1]
    for n in (1, 2, 3):
        script = services[f"sentinel-{n}"]["command"][2]
        assert 'requirepass "%s"\\nsentinel auth-pass imsrep "%s"' in script
        assert script.count(f"$(cat {REDIS_SECRET})") == 2
        assert f"--askpass sentinel get-master-addr-by-name imsrep < {REDIS_SECRET}" in " ".join(
            services[f"sentinel-{n}"]["healthcheck"]["test"]
        )
    for name in ("redis", "redis-replica", "sentinel-1", *PYTHON_SERVICES[:4]):
        secrets = [s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]]
        assert secrets == ["redis_password"], name
    for name in PYTHON_SERVICES[:4]:
        environment = services[name]["environment"]
        assert environment["IMSREP_REDIS_PASSWORD_FILE"] == REDIS_SECRET, name
        assert environment["IMSREP_REDIS_SENTINEL_PASSWORD_FILE"] == REDIS_SECRET, name
        assert not [key for key in environment if key.endswith(("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"))], name
        assert _settings(environment).redis_password.get_secret_value() == "compose-check-redis-password", name
    assert not [line for line in (ROOT / "docker-compose.yml").read_text().splitlines() if "--requirepass" in line]


def test_redis_its_replica_and_the_sentinels_require_the_password_secret() -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert raw["secrets"] == {"redis_password": {"file": "./secrets/redis-password"}}
    _requires_the_secret(interpolate(raw, {**SECRETS, **_env_file("ha.env")})["services"])


def _bound_port(command: list[str]) -> int:
    for i, arg in enumerate(command):
        if arg == "--port":
            return int(command[i + 1])
        if arg.startswith("--port="):
            return int(arg.split("=", 1)[1])
    raise AssertionError(f"no --port in {command}")


def test_published_ports_are_the_commands_on_loopback_only(compose: dict[str, Any]) -> None:
    # The API's /metrics and Flower's /metrics and /healthcheck need no credentials: loopback only.
    published = {name: svc["ports"] for name, svc in compose.items() if "ports" in svc}
    assert set(published) == {"api", "flower", "simulator"}
    for name, ports in published.items():
        port = _bound_port(compose[name]["command"])
        assert ports == [f"127.0.0.1:{port}:{port}"]
        assert port == services.DEFAULT_PORTS[name]


def test_redis_is_durable_and_pinned(compose: dict[str, Any]) -> None:
    redis = compose["redis"]
    command = " ".join(redis["command"])
    # Valkey, pinned to a release, 9.0 or later: fixed for CVE-2025-21605 and CVE-2025-49844 (Redis 7.4.2 was not).
    pinned = re.fullmatch(r"valkey/valkey:(\d+)\.(\d+)\.(\d+)(-trixie)?", redis["image"])
    assert pinned and tuple(map(int, pinned.groups()[:3])) >= (9, 0, 0), redis["image"]
    assert redis["command"][:2] == ["sh", "-c"] and redis["command"][3] == "valkey-server"
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    api, worker, flower = compose["api"], compose["worker"], compose["flower"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert "/healthcheck" in " ".join(flower["healthcheck"]["test"])
    ping = " ".join(worker["healthcheck"]["test"])
    node = worker["command"][worker["command"].index("-n") + 1]
    # Its own node: %h is the host name, which is $HOSTNAME in a container ($$ in the file).
    assert "inspect ping" in ping and f"-d {node.replace('%h', '$HOSTNAME')}" in ping
    app = worker["command"][worker["command"].index("-A") + 1]
    assert ping.startswith(f"CMD-SHELL celery -A {app} inspect ping ")
    for name in ("api", "worker", "beat", "flower"):
        assert compose[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert compose["beat"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_logs_are_rotated(compose: dict[str, Any]) -> None:
    for name, svc in compose.items():
        options = svc["logging"]["options"]
        assert svc["logging"]["driver"] == "json-file" and options["max-size"] and int(options["max-file"]) > 1, name


def test_one_pinned_image_for_the_python_services_installed_from_the_lock(compose: dict[str, Any]) -> None:
    images = {compose[name]["image"] for name in PYTHON_SERVICES}
    assert images == {"ims-replicator:local"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM python:(3\.\d+)\.\d+-slim-trixie$", dockerfile, re.MULTILINE)  # a patch release, pinned
    assert base and f"Programming Language :: Python :: {base[1]}" in PYPROJECT["project"]["classifiers"], dockerfile
    assert "pip install -c constraints.txt ." in dockerfile and "constraints.txt ./" in dockerfile


def _env_file(name: str) -> dict[str, str]:
    lines = (ROOT / "examples" / name).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_ha_profile_is_a_replica_and_three_sentinels_that_every_service_reaches_redis_through() -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    svc = rendered(_env_file("ha.env"))
    ha = {name for name, service in raw.items() if service.get("profiles") == ["ha"]}
    assert ha == {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
    replica = svc["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :] == ["redis", "6379"] and "--appendonly" in replica
    volumes = {svc[name]["volumes"][0] for name in ha}
    assert len(volumes) == 4  # each Redis and each Sentinel keeps its own state
    assert {svc[name]["image"] for name in ha} == {svc["redis"]["image"]}  # one server binary, Sentinels included
    script = svc["sentinel-3"]["command"][-1]
    assert "sentinel monitor imsrep redis 6379 2" in script and "sentinel resolve-hostnames yes" in script
    assert script.index("resolve-hostnames") < script.index("monitor")  # a host name needs it first
    for name in ("api", "worker", "beat", "flower"):
        settings = _settings(svc[name]["environment"])
        assert redis_nodes(settings.redis_url).hosts == tuple((f"sentinel-{n}", 26379) for n in (1, 2, 3)), name
        assert settings.redis_sentinel_master == "imsrep", name
    assert _settings(svc["api"]["environment"]).redis_min_replicas == 1
    # Workers scale (--scale worker=N): nothing in the service ties it to one container.
    assert "container_name" not in raw["worker"] and "ports" not in raw["worker"]
    assert svc["worker"]["command"][svc["worker"]["command"].index("-n") + 1] == "worker@%h"


@pytest.fixture(scope="session")
def docker_compose() -> None:
    """Debian's docker-compose (installed on a fresh machine): it validates the file offline, with no engine."""
    if missing := debian_package("docker-compose", "docker-compose"):
        pytest.skip(missing)


@pytest.mark.usefixtures("docker_compose")
@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--env-file", "examples/simulator.env", "--profile", "simulator"],
        ["--env-file", "examples/ha.env", "--profile", "ha"],
    ],
)
def test_docker_compose_accepts_the_file(extra: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(SECRETS)
    result = subprocess.run(
        ["docker-compose", *extra, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("docker_compose")
def test_docker_compose_gives_redis_the_secret() -> None:
    """What docker-compose itself makes of the file: the secret, and each Redis and Sentinel asking for it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(SECRETS)
    argv = ["docker-compose", "--env-file", "examples/ha.env", "--profile", "ha", "config"]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["secrets"]["redis_password"]["file"] == str(ROOT / "secrets" / "redis-password")
    # docker-compose shows $ doubled as written (a literal $ in the container).
    _requires_the_secret(interpolate(config["services"], {}))


def test_only_the_workers_get_the_cloud_credentials() -> None:
    services = rendered(_env_file("simulator.env"))  # an account with AK/SK in the shell
    secrets = ("ACCESS_KEY", "SECRET_KEY", "SECURITY_TOKEN", "IAM_PASSWORD")
    for name in ("api", "beat", "flower"):
        held = [k for k in services[name]["environment"] if k.endswith(secrets)]
        assert not held, (name, held)
    assert _settings(services["worker"]["environment"]).accounts["default"].has_credentials
    api = _settings(services["api"]["environment"])  # it starts: names, projects and limits are all it needs
    assert api.accounts["default"].project_id and not api.accounts["default"].has_credentials
