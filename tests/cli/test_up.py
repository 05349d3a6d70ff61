"""``imsrep up`` as a user runs it: it writes stack.json (0600), stops every service on SIGTERM, and stops everything
when one service dies."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.main import EXIT_USAGE
from cli.processes import free_port, wait_until
from config.settings import redis_nodes
from worker.data import Keyspace
from worker.queues import ALL_QUEUES

# The default account's lines for a slot (in-region and cross-region copies), shown as queues.
WAITING_LINES = [Keyspace().waiting_queue(pool) for pool in ("default", "default:cross-region")]

pytestmark = pytest.mark.integration


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().split(") ")[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.fixture
def up_env() -> dict[str, str]:
    """The environment ``up`` runs with: no IMSREP_ setting from outside but what a test adds."""
    return {k: v for k, v in os.environ.items() if not k.startswith("IMSREP_")}


@pytest.fixture
def up(
    request: pytest.FixtureRequest, tmp_path: Path, up_env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``imsrep up`` on free ports, with the flags the test is parametrized with (none by default)."""
    state = tmp_path / "state"
    ports = [f"--{name}-port={free_port()}" for name in ("api", "flower", "redis", "simulator")]
    flags = list(getattr(request, "param", ()))
    env = up_env
    env["IMSREP_WORKER_SOFT_SHUTDOWN_SECONDS"] = "1"  # the default 10 s is all waiting here: the stack is idle
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "imsrep"), "up", "--state-dir", str(state), *ports, *flags],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc, state
    finally:
        # SIGTERM: up stops its services, each in a process group of its own, which a SIGKILL of up's group alone
        # would leave running.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _started(proc: subprocess.Popen[bytes], state: Path) -> dict:
    wait_until(lambda: (state / "stack.json").exists() or proc.poll() is not None, 90, "stack.json")
    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    return json.loads((state / "stack.json").read_text())


def _line_with(proc: subprocess.Popen[bytes], text: str, timeout: float) -> str:
    """The first line of the process's output that holds ``text``, read as it comes."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
            line = proc.stdout.readline().decode()
            if text in line:
                return line
            assert line, f"output ended before a line with {text!r}"
    raise AssertionError(f"no line with {text!r} within {timeout}s")


def _a_team_is_added_without_a_restart(info: dict, state: Path) -> None:
    """The stack's principals file: a reader added to it is known at its next request, with its role's rights; the
    CLI's token is an operator's (it checks accounts), and the admin's is another."""
    path = state / "principals.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().startswith("# The principals")
    token = "a-readers-token-" + os.urandom(8).hex()
    digest = hashlib.sha256(token.encode()).hexdigest()
    with path.open("a") as f:
        f.write(f'[auditors]\ntoken_sha256 = "{digest}"\nrole = "reader"\naccounts = ["default"]\n')
    reader = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{info['api_url']}/v1/accounts", headers=reader).status_code == 200
    refused = httpx.post(f"{info['api_url']}/v1/batches", headers=reader, json={"items": []})
    assert refused.status_code == 403 and "principal auditors is a reader" in refused.text
    operator = {"Authorization": f"Bearer {info['api_token']}"}
    assert httpx.post(f"{info['api_url']}/v1/accounts/check", headers=operator).status_code == 202
    assert info["admin_token"] not in (info["api_token"], token)
    admin = {"Authorization": f"Bearer {info['admin_token']}"}
    assert httpx.get(f"{info['api_url']}/v1/audit", headers=operator).status_code == 403
    trail = httpx.get(f"{info['api_url']}/v1/audit", headers=admin, params={"principal": "auditors"}).json()
    assert [(r["action"], r["outcome"]) for r in trail["records"]] == [("batch.submit", "forbidden")]


def _unauthenticated(port: int, command: bytes) -> bytes:
    """What a Redis server or Sentinel on this machine answers anyone who sends ``command`` without a password."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(command + b"\r\n")
        return s.recv(256)


def _authenticated(port: int, password: str, command: bytes) -> bytes:
    return _unauthenticated(port, b"AUTH " + password.encode() + b"\r\n" + command)


def _locked(info: dict) -> list[str]:
    """up's Redis (and Sentinels) refuse whoever has not its password, which is in a 0600 file that stack.json names
    and not in stack.json; returns the passwords."""
    password = Path(info["redis_password_file"]).read_text().strip()
    assert stat.S_IMODE(Path(info["redis_password_file"]).stat().st_mode) == 0o600 and len(password) >= 40
    ports = [port for _, port in redis_nodes(info["redis_url"]).hosts]
    passwords = [password]
    if info["redis_sentinel_master"]:
        sentinel_password = Path(info["redis_sentinel_password_file"]).read_text().strip()
        passwords.append(sentinel_password)
        for port in ports:  # every Sentinel: it could be told to fail over, or to monitor another master
            assert _unauthenticated(port, b"SENTINEL MASTERS").startswith(b"-NOAUTH"), port
            assert _authenticated(port, sentinel_password, b"PING") == b"+OK\r\n+PONG\r\n"
        master = _authenticated(ports[0], sentinel_password, b"SENTINEL GET-MASTER-ADDR-BY-NAME imsrep")
        ports = [int(master.split(b"\r\n")[-2])]  # the master itself, the replica checked by the failover tier
    for port in ports:
        assert _unauthenticated(port, b"PING").startswith(b"-NOAUTH"), port
        assert _authenticated(port, password, b"PING") == b"+OK\r\n+PONG\r\n"
    assert not [p for p in passwords if p in json.dumps(info)]
    return passwords


def _output_without(proc: subprocess.Popen[bytes], passwords: list[str], info: dict) -> str:
    """Everything up printed (it has ended): where the passwords are, never the passwords."""
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert not [p for p in passwords if p in output] and info["redis_password_file"] in output
    return output


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_up_writes_stack_json_and_stops_cleanly_on_sigterm(up: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, state = up
    info = _started(proc, state)
    assert stat.S_IMODE((state / "stack.json").stat().st_mode) == 0o600
    assert httpx.get(f"{info['api_url']}/readyz").status_code == 200
    flower = httpx.get(f"{info['flower_url']}/api/workers", auth=(info["flower_user"], info["flower_password"]))
    assert flower.status_code == 200
    assert httpx.get(f"{info['flower_url']}/api/workers").status_code == 401
    queues = httpx.get(f"{info['flower_url']}/api/queues/length", auth=(info["flower_user"], info["flower_password"]))
    assert sorted(q["name"] for q in queues.json()["active_queues"]) == sorted([*ALL_QUEUES, *WAITING_LINES])
    _a_team_is_added_without_a_restart(info, state)
    children = _children(proc.pid)
    assert len(children) == 6  # redis, simulator, worker, beat, api, flower
    # Flower's password is on no command line and in no environment, Flower's included (it reads its file).
    password = info["flower_password"].encode()
    for pid in children:
        assert password not in Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
    passwords = _locked(info)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not [pid for pid in children if _group_members(pid)]
    assert not (state / "stack.json").exists()
    # Every secret printed whole on one line, however narrow the terminal (a pipe here: rich's 80 columns).
    lines = _output_without(proc, passwords, info).splitlines()
    for secret in ("api_token", "admin_token", "flower_password", "simulator_access_key", "simulator_secret_key"):
        assert any(info[secret] in line for line in lines), secret
    # What examples/ needs: the second region, and the project that copies are shared with.
    assert any(f"{info['simulator_regions']['cn-south-1']} (cn-south-1)" in line for line in lines)
    assert any("a second project to share with: 0123456789abcdef0123456789abcdef" in line for line in lines)


def test_up_stops_everything_when_a_service_dies(up: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, state = up
    _started(proc, state)
    children = _children(proc.pid)
    api = next(pid for pid in children if "uvicorn" in Path(f"/proc/{pid}/cmdline").read_text())
    os.killpg(api, signal.SIGKILL)
    assert proc.wait(timeout=60) == 1
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "api exited; stopping everything" in output
    assert not [pid for pid in children if _group_members(pid)]


@pytest.mark.parametrize("up", [("--sentinel",)], indirect=True)
def test_up_with_sentinel_runs_a_master_a_replica_and_three_sentinels(up: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, state = up
    info = _started(proc, state)
    assert info["redis_url"].startswith("sentinel://") and info["redis_url"].count("sentinel://") == 3
    assert info["redis_sentinel_master"] == "imsrep"
    assert httpx.get(f"{info['api_url']}/readyz").json() == {"status": "ready", "workers": 1, "beats": 1}
    auth = (info["flower_user"], info["flower_password"])  # Flower finds the broker through the Sentinels too
    queues = httpx.get(f"{info['flower_url']}/api/queues/length", auth=auth)
    assert sorted(q["name"] for q in queues.json()["active_queues"]) == sorted([*ALL_QUEUES, *WAITING_LINES])
    children = _children(proc.pid)
    assert len(children) == 10  # redis, its replica, 3 Sentinels, simulator, worker, beat, api, flower
    passwords = _locked(info)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert info["redis_sentinel_password_file"] in _output_without(proc, passwords, info)
    assert not [pid for pid in children if _group_members(pid)]


@pytest.fixture
def wrong_project(up_env: dict[str, str], start_simulator) -> str:
    """An account ``prod`` on a running simulator, with a project ID the simulator does not know."""
    sim = start_simulator()
    wrong = "f" * 32
    account = "IMSREP_ACCOUNTS__PROD__"
    fields = {"REGION": sim.region, "PROJECT_ID": wrong, "ACCESS_KEY": sim.access_key, "SECRET_KEY": sim.secret_key}
    fields |= {f"{api}_ENDPOINT": sim.url for api in ("IMS", "KMS", "IAM")}
    up_env.update({f"{account}{name}": value for name, value in fields.items()})
    return wrong


def test_up_checks_configured_accounts_and_names_the_setting_a_refusal_needs(
    wrong_project: str, up: tuple[subprocess.Popen[bytes], Path]
) -> None:
    proc, state = up
    _started(proc, state)
    children = _children(proc.pid)
    line = _line_with(proc, "account prod (in-region)", timeout=60)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not [pid for pid in children if _group_members(pid)]  # every service stopped with it
    assert "refused" in line and "APIGW.0310" in line
    assert "correct IMSREP_ACCOUNTS__PROD__PROJECT_ID or IMSREP_ACCOUNTS__PROD__REGION" in line


def test_up_refuses_an_account_without_credentials_before_starting_anything(
    up_env: dict[str, str], tmp_path: Path
) -> None:
    up_env["IMSREP_ACCOUNTS__PROD__PROJECT_ID"] = "f" * 32
    state = tmp_path / "state"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "imsrep"), "up", "--state-dir", str(state)],
        env=up_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "account 'prod' has no credentials" in message
    assert (
        "IMSREP_ACCOUNTS__PROD__ACCESS_KEY" in message
        and "IMSREP_ACCOUNTS__PROD__CREDENTIALS_SOURCE=metadata" in message
    )
    assert not (state / "stack.json").exists()
