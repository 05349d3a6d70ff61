"""docker-compose.yml agrees with the code: the same commands as ``LocalStack`` for any value of the settings they
carry, real settings, matching ports and queues, a durable pinned Redis, healthchecks, log rotation, every secret a
Docker secret that reaches only its services; and ``docker-compose config`` accepts it when the tool is installed."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import runpy
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tomllib

from cli import services
from config.settings import ENV_PREFIX, AccountSettings, Settings, SettingsError, names_secret, redis_nodes
from simulator.cli import simulator_command
from tests.support import debian_package
from worker.queues import ALL_QUEUES
from worker.run import WORKER_ENV

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BROKER = "redis://redis:6379/0"
PYTHON_SERVICES = ("api", "worker", "beat", "flower", "simulator")
REDIS_SERVERS = ("redis", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3")
# Every secret of the file, the value the test gives it (each its own, to tell where it went) and the services that
# get it: only those.
SECRETS = {
    "redis_password": ("compose-check-redis-password", {*REDIS_SERVERS, "api", "worker", "beat", "flower"}),
    "api_tokens": ("compose-check-api-token", {"api"}),
    "flower_password": ("compose-check-flower-password", {"flower"}),
    "access_key": ("AKCOMPOSECHECK", {"worker"}),
    "secret_key": ("compose-check-secret-key", {"worker"}),
    "security_token": ("compose-check-security-token", {"worker"}),
    "iam_password": ("compose-check-iam-password", {"worker"}),
}
# An account with a temporary AK/SK, each from its secret (the header's set-up).
TEMPORARY_AKSK = {
    f"{ENV_PREFIX}ACCOUNTS__DEFAULT__PROJECT_ID": "a" * 32,
    **{
        f"{ENV_PREFIX}ACCOUNTS__DEFAULT__{name.upper()}_FILE": f"/run/secrets/{name}"
        for name in ("access_key", "secret_key", "security_token")
    },
}
# Flower's options file in the image (the Dockerfile copies worker/ to /app/worker).
IMAGE_FLOWER_OPTIONS = "/app/worker/flower_options.py"
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
    """The services as compose runs them with ``env`` in the shell."""
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return interpolate(raw, env or {})["services"]


@pytest.fixture(scope="module")
def compose() -> dict[str, dict[str, Any]]:
    return rendered()


RUN_SECRETS = "/run/secrets/"  # where a container finds the compose file's secrets
REDIS_SECRET = f"{RUN_SECRETS}redis_password"


def _in_service(environment: dict[str, str], run: Any, secrets: Any = None) -> Any:
    """``run()`` in the environment a compose service has (its IMSREP_ variables, its secrets in a folder of their
    own here, ``secrets`` their values: ``SECRETS``' unless given)."""
    with tempfile.TemporaryDirectory() as folder:
        for name, value in (secrets or {name: value for name, (value, _) in SECRETS.items()}).items():
            Path(folder, name).write_text(value + "\n")
        given = {k: v.replace(RUN_SECRETS, f"{folder}/") for k, v in environment.items() if k.startswith(ENV_PREFIX)}
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k != "REDIS_URL"}
        with mock.patch.dict(os.environ, {**inherited, **given}, clear=True):
            return run()


def _settings(environment: dict[str, str]) -> Settings:
    """The settings a compose service reads."""
    return _in_service(environment, Settings)


def _flower_auth(flower: dict[str, Any]) -> list[str]:
    """The ``basic_auth`` compose's Flower runs with: its options file (``--conf``, the repository's copy of the
    image's), run as Flower runs it, in Flower's environment."""
    options = next(arg.removeprefix("--conf=") for arg in flower["command"] if arg.startswith("--conf="))
    assert options == IMAGE_FLOWER_OPTIONS
    return _in_service(flower["environment"], lambda: runpy.run_path(str(ROOT / "worker/flower_options.py")))[
        "basic_auth"
    ]


def _commands(svc: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    settings = _settings(svc["worker"]["environment"])
    return {
        "api": services.api("0.0.0.0", 8000, python="python").argv,
        "worker": services.worker(settings, python="python").argv,
        "beat": services.beat(settings, python="python").argv,
        "flower": services.flower(settings, "0.0.0.0", 5555, options=IMAGE_FLOWER_OPTIONS, python="python").argv,
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
    for name in ("flower",) if variable == "IMSREP_FLOWER_USER" else ("api", "worker", "beat"):
        assert svc[name]["environment"][variable] == value, name
    flower = svc["flower"]
    assert flower["environment"]["IMSREP_REDIS_URL"] == svc["api"]["environment"]["IMSREP_REDIS_URL"]
    user = flower["environment"]["IMSREP_FLOWER_USER"]
    assert _flower_auth(flower) == [f"{user}:{SECRETS['flower_password'][0]}"]


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
                account, field = name.removeprefix(f"{ENV_PREFIX}ACCOUNTS__").lower().split("__")
                secret_file = field.endswith("_file") and names_secret(
                    ["accounts", account, field.removesuffix("_file")]
                )
                assert re.fullmatch(r"[a-z0-9_]+", account), name
                assert field in AccountSettings.model_fields or secret_file, name
            elif name.startswith(ENV_PREFIX):
                setting = name.removeprefix(ENV_PREFIX).lower()
                secret_file = setting.endswith("_file") and names_secret(setting.removesuffix("_file").split("__"))
                assert setting in Settings.model_fields or secret_file, name  # a secret's file: config.settings
            else:
                assert (service, name) == ("worker", "REMAP_SIGTERM"), name
            checked += 1
    assert checked > 20


def test_secrets_are_required_not_defaulted() -> None:
    """The API's tokens and Flower's password are files of secrets/, which the services refuse empty: there is no
    default to fall back on."""
    svc = rendered()
    assert svc["api"]["environment"]["IMSREP_API_TOKENS_FILE"] == f"{RUN_SECRETS}api_tokens"
    assert svc["flower"]["environment"]["IMSREP_FLOWER_PASSWORD_FILE"] == f"{RUN_SECRETS}flower_password"
    empty = dict.fromkeys(SECRETS, "")
    with pytest.raises(SettingsError, match="IMSREP_API_TOKENS_FILE: .* is empty"):
        _in_service(svc["api"]["environment"], Settings, empty)
    with pytest.raises(SettingsError, match="IMSREP_FLOWER_PASSWORD_FILE: .* is empty"):
        _in_service(svc["flower"]["environment"], Settings, empty)
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for service in ("api", "worker", "beat"):
        assert raw[service]["environment"]["IMSREP_REDIS_URL"].startswith("${IMSREP_REDIS_URL:-")


def _secrets_of(service: dict[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets") or []}


def _secret_variables(environment: dict[str, str]) -> list[str]:
    """The variables of ``environment`` that would hold a secret's value (not its file's name)."""
    return [
        k for k in environment if k.startswith(ENV_PREFIX) and names_secret(k[len(ENV_PREFIX) :].lower().split("__"))
    ]


@pytest.mark.parametrize("env_file", [None, "simulator.env", "ha.env"])
def test_every_secret_reaches_only_its_services_and_no_environment_variable(env_file: str | None) -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(raw["secrets"]) == set(SECRETS)
    assert all(secret["file"].startswith("./secrets/") for secret in raw["secrets"].values())
    env = {**TEMPORARY_AKSK, **(_env_file(env_file) if env_file else {})}
    svc = interpolate(raw, env)["services"]
    for name, (_, holders) in SECRETS.items():
        assert {service for service in svc if name in _secrets_of(svc[service])} == holders, name
    values = [value for value, _ in SECRETS.values()]
    for name, service in svc.items():
        environment = service.get("environment") or {}
        assert not _secret_variables(environment), name  # only ..._FILE
        assert not [v for v in values if v in str(environment) or v in str(service["command"])], name
        if name in PYTHON_SERVICES[:4]:  # what each reads: its own secrets and no other
            read = _settings(environment).secret_values()
            own = {SECRETS[secret][0] for secret in _secrets_of(service)}
            assert set(read) <= own and SECRETS["redis_password"][0] in read, (name, read)
    assert {"AKCOMPOSECHECK", "compose-check-security-token"} <= set(
        _settings(svc["worker"]["environment"]).secret_values()
    )
    assert _settings(svc["api"]["environment"]).api_tokens[0].get_secret_value() == SECRETS["api_tokens"][0]


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
        assert "redis_password" in _secrets_of(services[name]), name
    for name in PYTHON_SERVICES[:4]:
        environment = services[name]["environment"]
        assert environment["IMSREP_REDIS_PASSWORD_FILE"] == REDIS_SECRET, name
        assert environment["IMSREP_REDIS_SENTINEL_PASSWORD_FILE"] == REDIS_SECRET, name
        assert not [key for key in environment if key.endswith(("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"))], name
        assert _settings(environment).redis_password.get_secret_value() == SECRETS["redis_password"][0], name
    assert not [line for line in (ROOT / "docker-compose.yml").read_text().splitlines() if "--requirepass" in line]


def test_redis_its_replica_and_the_sentinels_require_the_password_secret() -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert raw["secrets"]["redis_password"] == {"file": "./secrets/redis-password"}
    _requires_the_secret(interpolate(raw, _env_file("ha.env"))["services"])


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
    result = subprocess.run(
        ["docker-compose", *extra, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("docker_compose")
def test_docker_compose_gives_each_secret_to_its_services_only() -> None:
    """What docker-compose itself makes of the file: each secret from its file to its services and no other, no
    secret's value in an environment variable, and each Redis and Sentinel asking for the password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(TEMPORARY_AKSK)
    argv = ["docker-compose", "--env-file", "examples/ha.env", "--profile", "ha", "config"]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["secrets"]["redis_password"]["file"] == str(ROOT / "secrets" / "redis-password")
    assert all(Path(secret["file"]).parent == ROOT / "secrets" for secret in config["secrets"].values())
    for name, (_, holders) in SECRETS.items():
        given = {service for service, svc in config["services"].items() if name in _secrets_of(svc)}
        assert given == holders, name
    for name, svc in config["services"].items():
        assert not _secret_variables(svc.get("environment") or {}), name
    assert config["services"]["worker"]["environment"].items() >= TEMPORARY_AKSK.items()
    # docker-compose shows $ doubled as written (a literal $ in the container).
    _requires_the_secret(interpolate(config["services"], {}))


def test_only_the_workers_get_the_cloud_credentials() -> None:
    services = rendered(_env_file("simulator.env"))  # an account with AK/SK from the secrets
    secrets = ("ACCESS_KEY_FILE", "SECRET_KEY_FILE", "SECURITY_TOKEN_FILE", "IAM_PASSWORD_FILE")
    for name in ("api", "beat", "flower"):
        held = [k for k in services[name]["environment"] if k.endswith(secrets)]
        assert not held, (name, held)
    worker = _settings(services["worker"]["environment"]).accounts["default"]
    assert worker.access_key.get_secret_value() == SECRETS["access_key"][0] and worker.security_token is None
    api = _settings(services["api"]["environment"])  # it starts: names, projects and limits are all it needs
    assert api.accounts["default"].project_id and not api.accounts["default"].has_credentials


def test_an_iam_password_account_reads_its_secret_alone() -> None:
    """The kinds of credentials differ by the _FILE variables set: the secrets of the others stay unread (and may
    be empty files)."""
    account = f"{ENV_PREFIX}ACCOUNTS__DEFAULT__"
    env = {f"{account}IAM_PASSWORD_FILE": f"{RUN_SECRETS}iam_password", f"{account}IAM_USER": "replicator"}
    env.update({f"{account}IAM_DOMAIN": "example", f"{account}PROJECT_ID": "a" * 32})
    worker = rendered(env)["worker"]["environment"]
    empty = {name: value if name in ("redis_password", "iam_password") else "" for name, (value, _) in SECRETS.items()}
    settings = _in_service(worker, Settings, empty).accounts["default"]
    assert settings.iam_password.get_secret_value() == SECRETS["iam_password"][0] and settings.access_key is None


def test_flowers_options_file_is_in_the_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "WORKDIR /app\n" in dockerfile and "COPY worker ./worker\n" in dockerfile
    assert Path(IMAGE_FLOWER_OPTIONS).relative_to("/app") == Path(services.FLOWER_OPTIONS).relative_to(ROOT)
