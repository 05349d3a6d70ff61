"""docker-compose.yml agrees with the code: the same commands as ``LocalStack``, real settings, matching ports and
queues, a durable Redis; and ``docker-compose config`` accepts it when the tool is installed."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cli import services
from config.settings import ENV_PREFIX, AccountSettings, Settings
from simulator.cli import simulator_command
from worker.queues import ALL_QUEUES
from worker.run import WORKER_ENV, worker_argv

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://redis:6379/0"
PYTHON_SERVICES = ("api", "worker", "beat", "flower", "simulator")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _python_m(args: list[str]) -> list[str]:
    return ["python", "-m", *args]


def test_commands_are_the_local_stacks(compose: dict[str, Any]) -> None:
    svc = _services(compose)
    assert svc["api"]["command"] == _python_m(services.api_args("0.0.0.0", 8000))
    assert svc["worker"]["command"] == worker_argv(python="python")
    assert svc["beat"]["command"] == _python_m(services.beat_args("/data/celerybeat-schedule"))
    assert svc["flower"]["command"] == _python_m(services.flower_args(BROKER, "0.0.0.0", 5555, "/data/flower.db"))
    assert svc["simulator"]["command"] == _python_m(services.simulator_args("0.0.0.0", 8780))
    assert svc["simulator"]["profiles"] == ["simulator"]


def test_the_commands_name_modules_that_import() -> None:
    for target in (services.API_APP, "worker.celery_app:app"):
        module, attribute = target.split(":")
        assert hasattr(importlib.import_module(module), attribute), target


def test_the_worker_consumes_every_queue(compose: dict[str, Any]) -> None:
    worker = _services(compose)["worker"]
    command = worker["command"]
    assert command[command.index("-Q") + 1].split(",") == ALL_QUEUES
    assert "-E" in command  # task events, for Flower
    assert WORKER_ENV.items() <= worker["environment"].items()
    assert worker["environment"]["IMSREP_REDIS_URL"] == BROKER


def _environment_names(compose: dict[str, Any]) -> dict[str, set[str]]:
    return {name: set(svc.get("environment") or {}) for name, svc in _services(compose).items()}


def test_every_imsrep_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    simulator_options = set(inspect.signature(simulator_command).parameters)
    checked = 0
    for service, names in _environment_names(compose).items():
        for name in names:
            if name.startswith(f"{ENV_PREFIX}SIM_"):
                assert service == "simulator" and name.removeprefix(f"{ENV_PREFIX}SIM_").lower() in simulator_options
            elif name.startswith(f"{ENV_PREFIX}ACCOUNTS__"):
                account, field = name.removeprefix(f"{ENV_PREFIX}ACCOUNTS__").split("__")
                assert re.fullmatch(r"[A-Z0-9_]+", account) and field.lower() in AccountSettings.model_fields, name
            elif name.startswith(ENV_PREFIX):
                assert name.removeprefix(ENV_PREFIX).lower() in Settings.model_fields, name
            else:
                assert (service, name) in {("flower", "FLOWER_BASIC_AUTH"), ("worker", "REMAP_SIGTERM")}, name
            checked += 1
    assert checked > 20


def test_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    svc = _services(compose)
    env = svc["api"]["environment"]
    assert env["IMSREP_API_TOKENS"].startswith("${IMSREP_API_TOKENS:?")
    assert env["IMSREP_FLOWER_PASSWORD"].startswith("${IMSREP_FLOWER_PASSWORD:?")
    assert "${IMSREP_FLOWER_PASSWORD:?" in svc["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    for service in ("api", "worker", "beat"):
        assert svc[service]["environment"]["IMSREP_REDIS_URL"] == BROKER


def _bound_port(command: list[str]) -> int:
    for i, arg in enumerate(command):
        if arg == "--port":
            return int(command[i + 1])
        if arg.startswith("--port="):
            return int(arg.split("=", 1)[1])
    raise AssertionError(f"no --port in {command}")


def test_published_ports_are_the_ones_the_commands_bind(compose: dict[str, Any]) -> None:
    published = {name: svc["ports"] for name, svc in _services(compose).items() if "ports" in svc}
    assert set(published) == {"api", "flower", "simulator"}
    for name, ports in published.items():
        port = _bound_port(_services(compose)[name]["command"])
        # Flower's /metrics needs no password, so it is published on the host's loopback only.
        host = "127.0.0.1:" if name == "flower" else ""
        assert ports == [f"{host}{port}:{port}"]
        assert port == services.DEFAULT_PORTS[name]


def test_redis_is_durable(compose: dict[str, Any]) -> None:
    redis = _services(compose)["redis"]
    command = " ".join(redis["command"])
    assert redis["image"].startswith("redis:7")
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_one_image_for_the_python_services(compose: dict[str, Any]) -> None:
    images = {_services(compose)[name]["image"] for name in PYTHON_SERVICES}
    assert images == {"ims-replicator:local"}
    assert "pip install ." in (ROOT / "Dockerfile").read_text()


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
@pytest.mark.parametrize("extra", [[], ["--env-file", "examples/simulator.env", "--profile", "simulator"]])
def test_docker_compose_accepts_the_file(extra: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(IMSREP_API_TOKENS="compose-check-token", IMSREP_FLOWER_PASSWORD="compose-check-password")
    result = subprocess.run(
        ["docker-compose", *extra, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
