"""The command: every option, its environment variable, validation, and ``python -m simulator``."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import simulator.cli
from simulator.cli import simulator_command

OPTIONS = [
    "host",
    "port",
    "region",
    "region-port",
    "project-id",
    "agency",
    "access-key",
    "secret-key",
    "iam-user",
    "iam-password",
    "iam-domain",
    "catalog",
    "copy-seconds",
    "copy-seconds-per-gb",
    "job-limit",
    "image-quota",
    "cross-region-job-limit",
    "shared-job-pool",
    "cross-region-max-gb",
    "member-job-seconds",
    "unencrypted-shared-copies",
    "new-images-every",
    "new-images-count",
    "request-rate",
    "fail-rate",
    "error-rate",
    "throttle-rate",
    "latency",
    "hang-rate",
    "hang-seconds",
    "seed",
    "token-ttl",
    "lockout-seconds",
    "log-level",
]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke the command with the server replaced: returns (result, the Simulator it would have served)."""
    served: dict[str, Any] = {}
    monkeypatch.setattr(simulator.cli, "serve", lambda app, sim, config: served.update(app=app, sim=sim))
    app = typer.Typer()
    app.command()(simulator_command)

    def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[Any, Any]:
        result = CliRunner().invoke(app, args, env=env)
        result_sim = served.pop("sim", None)
        served.clear()
        return result, result_sim

    return invoke


def test_help_lists_every_option_and_its_environment_variable(run: Any) -> None:
    result, _ = run(["--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for option in OPTIONS:
        assert f"--{option}" in result.output
        assert "IMSREP_SIM_" + option.upper().replace("-", "_") in result.output


def test_defaults(run: Any) -> None:
    result, sim = run([])
    assert result.exit_code == 0, result.output
    config = sim.config
    assert (config.host, config.port, config.region) == ("127.0.0.1", 8780, "cn-north-4")
    assert config.project_ids == ("ac234de25c6741d2b1273da49eea1b9e",)
    assert (config.access_key, config.secret_key) == ("AKEXAMPLE", "SKEXAMPLE")
    assert (config.iam_user, config.iam_password, config.iam_domain) == ("demo-user", "demo-password", "demo-domain")
    assert (config.copy_seconds, config.copy_seconds_per_gb, config.job_limit, config.image_quota) == (5, 0, 5, 50)
    assert config.extra_regions == () and list(sim.state.regions) == ["cn-north-4"]
    assert (config.cross_region_job_limit, config.shared_job_pool, config.member_job_seconds) == (5, False, 1)
    assert config.unencrypted_shared_copies is False
    assert list(sim.state.agencies) == ["ims_admin_agency"]
    assert (config.new_images_every, config.new_images_count) == (0, 1)
    assert sim.knobs.as_dict() == {
        "fail_rate": 0,
        "error_rate": 0,
        "error_apis": (),
        "throttle_rate": 0,
        "latency": 0,
        "hang_rate": 0,
        "hang_seconds": 120,
        "request_rate": 0,
    }
    assert isinstance(config.seed, int)


def test_environment_sets_every_kind_of_option(run: Any, tmp_path: Path) -> None:
    catalog = tmp_path / "c.json"
    catalog.write_text(json.dumps({"default": {"images": [{"name": "only"}]}}))
    env = {
        "IMSREP_SIM_PORT": "9999",
        "IMSREP_SIM_REGION": "ap-southeast-1",
        "IMSREP_SIM_JOB_LIMIT": "2",
        "IMSREP_SIM_PROJECT_ID": "0123456789abcdef0123456789abcdef fedcba9876543210fedcba9876543210",
        "IMSREP_SIM_FAIL_RATE": "0.25",
        "IMSREP_SIM_SEED": "99",
        "IMSREP_SIM_CATALOG": str(catalog),
        "IMSREP_SIM_REQUEST_RATE": "7.5",
        "IMSREP_SIM_LOG_LEVEL": "debug",
    }
    result, sim = run([], env=env)
    assert result.exit_code == 0, result.output
    config = sim.config
    assert (config.port, config.region, config.job_limit, config.seed, config.log_level) == (
        9999,
        "ap-southeast-1",
        2,
        99,
        "debug",
    )
    assert config.project_ids == ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210")
    assert sim.knobs.fail_rate == 0.25 and sim.knobs.request_rate == 7.5
    assert [i["name"] for i in sim.state.first_project.images.values()] == ["only"]
    assert sim.state.first_project.name == "ap-southeast-1"
    result, sim = run(["--new-images-every", "30"], env={"IMSREP_SIM_NEW_IMAGES_COUNT": "3"})
    assert (sim.config.new_images_every, sim.new_images.count) == (30, 3)
    # A flag beats the environment.
    result, sim = run(["--job-limit", "4"], env={"IMSREP_SIM_JOB_LIMIT": "2"})
    assert sim.config.job_limit == 4
    result, sim = run([], env={"IMSREP_SIM_UNENCRYPTED_SHARED_COPIES": "true"})
    assert sim.config.unencrypted_shared_copies is True


def test_several_regions_with_their_projects_ports_and_agencies(run: Any) -> None:
    other = "0123456789abcdef0123456789abcdef"
    result, sim = run(
        [
            "--port",
            "9000",
            "--region",
            "cn-north-4",
            "--region",
            "cn-south-1",
            "--region",
            "ap-x-1",
            "--region-port",
            "ap-x-1=0",
            "--project-id",
            f"cn-south-1={other}",
            "--agency",
            "narrow=cn-south-1",
            "--agency",
            "none",
        ]
    )
    assert result.exit_code == 0, result.output
    specs = {spec.name: spec for spec in sim.config.regions}
    assert [spec.port for spec in specs.values()] == [9000, 9001, 0]
    assert specs["cn-north-4"].project_ids == ("ac234de25c6741d2b1273da49eea1b9e",)
    assert specs["cn-south-1"].project_ids == (other,)
    derived = specs["ap-x-1"].project_ids[0]
    assert (
        len(derived) == 32
        and derived == run(["--region", "a-1", "--region", "ap-x-1"])[1].config.regions[1].project_ids[0]
    )  # derived from the region's name, the same in every run
    agencies = sim.state.agencies
    assert agencies["ims_admin_agency"].allows("ap-x-1", full_ecs=True)
    assert agencies["narrow"].allows("cn-south-1", full_ecs=False) and not agencies["narrow"].allows(
        "ap-x-1", full_ecs=False
    )
    assert not agencies["none"].allows("cn-south-1", full_ecs=False)
    # The environment takes several regions, space-separated.
    result, sim = run([], env={"IMSREP_SIM_REGION": "eu-west-101 eu-west-0"})
    assert list(sim.state.regions) == ["eu-west-101", "eu-west-0"] and sim.state.region == "eu-west-101"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project-id", "not-hex"], "32 lower-case hex"),
        (["--region", "Bad_Region"], "lower-case words"),
        (["--region", "a-1", "--region-port", "b-1=9"], "not a region after the first"),
        (["--region", "a-1", "--region", "b-1", "--region-port", "b-1=x"], "not a port"),
        (["--port", "9000", "--region", "a-1", "--region", "b-1", "--region-port", "b-1=9000"], "one port"),
        (["--project-id", "zz-1=0123456789abcdef0123456789abcdef"], "not a region served"),
        (
            ["--region", "a-1", "--region", "b-1", "--project-id", "b-1=ac234de25c6741d2b1273da49eea1b9e"],
            "one region only",
        ),
        (["--agency", "x=nowhere-1"], "not served"),
        (["--fail-rate", "1.5"], "fail-rate"),
        (["--copy-seconds", "-1"], "copy-seconds"),
        (["--log-level", "loud"], "log-level"),
        (["--new-images-count", "2"], "--new-images-every"),
        (["--new-images-every", "5", "--new-images-count", "0"], "new-images-count"),
    ],
)
def test_bad_values_are_refused(run: Any, args: list[str], message: str) -> None:
    result, sim = run(args)
    assert result.exit_code == 2 and sim is None
    assert message in result.output


def test_bad_catalogue_is_refused(run: Any, tmp_path: Path) -> None:
    catalog = tmp_path / "bad.json"
    catalog.write_text(json.dumps({"default": {"images": [{"name": "a", "encrypted_with": "missing"}]}}))
    result, sim = run(["--catalog", str(catalog)])
    assert result.exit_code == 2 and sim is None and "unknown key" in result.output


def test_python_dash_m_and_imsrep_run_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "250", "PATH": ""},
        check=True,
    )
    assert "IMSREP_SIM_COPY_SECONDS" in result.stdout
    assert "--shared-job-pool" in result.stdout and "<bool>" not in result.stdout  # a flag takes no value
    from cli.main import app

    help_text = CliRunner().invoke(app, ["simulator", "--help"], env={"COLUMNS": "250"}).output
    assert "--copy-seconds-per-gb" in help_text and "IMSREP_SIM_HANG_SECONDS" in help_text


def test_served_connections_send_without_waiting_for_acks() -> None:
    """asyncio turns Nagle's algorithm off only on TCP-protocol sockets; a listener made with proto 0 cost every
    simulator response a delayed-ACK wait (the benchmarks' hand-off went from 0.005 to 0.49 x D)."""

    async def nodelay_of_accepted() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def accepted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = simulator.cli.listening_socket("127.0.0.1", 0)
        server = await asyncio.start_server(accepted, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value

    assert asyncio.run(nodelay_of_accepted()) != 0


def test_a_port_in_use_is_refused_with_its_address() -> None:
    taken = simulator.cli.listening_socket("127.0.0.1", 0)
    taken.listen()
    port = taken.getsockname()[1]
    with taken, pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}"):
        simulator.cli.listening_socket("127.0.0.1", port)
