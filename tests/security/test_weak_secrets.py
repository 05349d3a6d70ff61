"""Default or demo secrets outside demo mode: every process refuses to start, says which variable is at fault in one
line, and does not echo the secret back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import services
from cli.processes import free_port
from config.settings import Settings

pytestmark = pytest.mark.integration

STRONG = "strong-token-1b7e0c94d2a8"
ACCOUNT = {
    "IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID": "0123456789abcdef0123456789abcdef",
    "IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY": "AKWEAKSECRETTEST",
    "IMSREP_ACCOUNTS__DEFAULT__SECRET_KEY": "SKWEAKSECRETTESTVALUE",
}
WEAK = [
    ({"IMSREP_API_TOKENS": "changeme"}, "IMSREP_API_TOKENS", "changeme"),
    ({"IMSREP_API_TOKENS": f"{STRONG},demo"}, "IMSREP_API_TOKENS", STRONG),
    ({"IMSREP_API_TOKENS": STRONG, "IMSREP_FLOWER_PASSWORD": "admin"}, "IMSREP_FLOWER_PASSWORD", STRONG),
]


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMSREP_")}
    # An unreachable Redis: a process that got past its settings would hang on it instead of exiting.
    redis = {"IMSREP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "IMSREP_REDIS_PASSWORD": STRONG}
    return {**clean, **ACCOUNT, **redis, "IMSREP_STATE_DIR": str(tmp_path), **settings}


def _refused(argv: list[str], env: dict[str, str], variable: str, secret: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert variable in output and "refused outside demo mode" in output, output
    assert secret not in output, output


@pytest.mark.parametrize(("settings", "variable", "secret"), WEAK)
def test_the_api_refuses_to_start(tmp_path: Path, settings: dict, variable: str, secret: str) -> None:
    _refused(services.api("127.0.0.1", free_port()).argv, _env(tmp_path, **settings), variable, secret)


@pytest.mark.parametrize(("settings", "variable", "secret"), WEAK[:1])
def test_the_worker_refuses_to_start(tmp_path: Path, settings: dict, variable: str, secret: str) -> None:
    _refused(services.worker(Settings(), concurrency=1).argv, _env(tmp_path, **settings), variable, secret)


@pytest.mark.parametrize(("settings", "variable", "secret"), WEAK)
def test_the_stack_refuses_to_start_and_leaves_nothing_running(
    tmp_path: Path, settings: dict, variable: str, secret: str
) -> None:
    imsrep = str(Path(sys.executable).parent / "imsrep")
    argv = [imsrep, "up", "--state-dir", str(tmp_path / "state")]
    argv += [f"--{name}-port={free_port()}" for name in ("api", "flower", "redis", "simulator")]
    env = _env(tmp_path, **settings)
    del env["IMSREP_REDIS_URL"], env["IMSREP_REDIS_PASSWORD"]  # the stack would run its own
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert variable in done.stderr and "Traceback" not in done.stderr
    assert secret not in done.stdout + done.stderr
    assert not (tmp_path / "state" / "logs").exists()  # refused before any service started


def test_the_services_and_the_stack_refuse_a_redis_without_a_password(tmp_path: Path) -> None:
    env = _env(tmp_path, IMSREP_API_TOKENS=STRONG)
    del env["IMSREP_REDIS_PASSWORD"]
    imsrep = [str(Path(sys.executable).parent / "imsrep"), "up", "--state-dir", str(tmp_path / "state")]
    for argv in (services.api("127.0.0.1", free_port()).argv, services.worker(Settings(), concurrency=1).argv, imsrep):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        output = done.stdout + done.stderr
        assert done.returncode != 0 and "IMSREP_REDIS_PASSWORD: required" in output, output
        assert "IMSREP_REDIS_ALLOW_NO_PASSWORD=true" in output and "Traceback" not in done.stderr[-2000:], output
    assert not (tmp_path / "state" / "logs").exists()  # up refused before any service started
    allowed = subprocess.run(
        [sys.executable, "-c", "from config.settings import load_settings; load_settings()"],
        env={**env, "IMSREP_REDIS_ALLOW_NO_PASSWORD": "true"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr


def test_demo_mode_accepts_the_demo_secrets(tmp_path: Path) -> None:
    # The only place "demo" is a valid secret; the demo stack itself uses fresh random ones.
    env = _env(tmp_path, IMSREP_DEMO="true", IMSREP_API_TOKENS="demo", IMSREP_FLOWER_PASSWORD="demo")
    probe = "from config.settings import load_settings; print(load_settings().demo)"
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
