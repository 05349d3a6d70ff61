"""LocalStack's decisions, without starting anything: which Redis, simulator or not, which secrets, which env."""

from __future__ import annotations

import os
import runpy
import socket
import stat
from pathlib import Path
from unittest import mock

import pytest

from cli import services
from cli.processes import ServiceError, free_port
from cli.services import Service
from cli.stack import LocalStack, SentinelSpec, StackOptions, WorkerSpec, read_stack_file
from config.settings import load_settings
from simulator.catalog.records import default_project_id_for
from worker.domain.guardrails import region_breach

ACCOUNT = {"prod": {"project_id": "f" * 32, "access_key": "AK", "secret_key": "SK"}}


def _stack(tmp_path: Path, demo: bool = False, **settings: object) -> LocalStack:
    return LocalStack(StackOptions(state_dir=tmp_path, demo=demo), settings=load_settings(**settings))


def test_redis_is_started_unless_one_is_configured(tmp_path: Path) -> None:
    assert _stack(tmp_path).own_redis
    assert not _stack(tmp_path, redis_url="redis://elsewhere:6379/0", redis_password="elsewhere-pw").own_redis


def test_simulator_when_no_account_is_configured_or_for_the_demo(tmp_path: Path) -> None:
    assert _stack(tmp_path).simulator_mode
    assert not _stack(tmp_path, accounts=ACCOUNT).simulator_mode
    assert _stack(tmp_path, demo=True, accounts=ACCOUNT).simulator_mode
    forced = LocalStack(StackOptions(state_dir=tmp_path, use_simulator=False), settings=load_settings())
    assert not forced.simulator_mode


def test_configured_secrets_are_used_except_by_the_demo(tmp_path: Path) -> None:
    configured = {"api_tokens": "a-long-configured-token", "flower_password": "a-long-flower-password"}
    configured_token = "a-long-configured-token"
    assert _stack(tmp_path, **configured)._secrets() == (configured_token, configured_token, "a-long-flower-password")
    token, admin, password = _stack(tmp_path, demo=True, **configured)._secrets()
    assert configured_token not in (token, admin) and password != "a-long-flower-password"
    assert token != admin  # the CLI's operator token, and the admin's
    assert len(token) >= 24 and len(admin) >= 24 and len(password) >= 18
    assert _stack(tmp_path)._secrets() != _stack(tmp_path)._secrets()  # random each time


def test_simulator_mode_drops_inherited_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for field, value in {"PROJECT_ID": "f" * 32, "ACCESS_KEY": "AKPROD", "SECRET_KEY": "SKPROD"}.items():
        monkeypatch.setenv(f"IMSREP_ACCOUNTS__PROD__{field}", value)
    monkeypatch.setenv("IMSREP_DEFAULT_ACCOUNT", "prod")
    stack = LocalStack(StackOptions(state_dir=tmp_path, demo=True, simulator={"access_key": "AK1"}))
    stack.plan()
    env = stack.service_env()
    assert env["IMSREP_ACCOUNTS__PROD__PROJECT_ID"] is None and env["IMSREP_ACCOUNTS__PROD__SECRET_KEY"] is None
    assert env["IMSREP_DEFAULT_ACCOUNT"] == "default"
    sim = stack.info.simulator_url
    assert env["IMSREP_ACCOUNTS__DEFAULT__IMS_ENDPOINT"] == env["IMSREP_ACCOUNTS__DEFAULT__KMS_ENDPOINT"] == sim
    assert env["IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY"] == "AK1"


def test_demo_flag_only_for_the_demo(tmp_path: Path) -> None:
    assert _stack(tmp_path, demo=True).service_env()["IMSREP_DEMO"] == "true"
    assert "IMSREP_DEMO" not in _stack(tmp_path).service_env()


def test_services_are_named_entries_in_start_order(tmp_path: Path) -> None:
    workers = (WorkerSpec(), WorkerSpec("poller", queues=("poll",), concurrency=2))
    plan = LocalStack(StackOptions(state_dir=tmp_path, workers=workers), settings=load_settings()).plan()
    assert [s.name for s in plan] == ["redis", "simulator", "worker", "poller", "beat", "api", "flower"]
    poller = {s.name: s for s in plan}["poller"].argv
    assert poller[poller.index("-n") + 1] == "poller@%h" and poller[poller.index("-Q") + 1] == "poll"
    assert [s.name for s in plan if s.data_store] == ["redis"]


# Each setting ``imsrep up`` turns into a flag or a service's environment, set to a value that is not its default.
LAUNCHER_SETTINGS = {
    "worker_concurrency": ("IMSREP_WORKER_CONCURRENCY", "7"),
    "state_dir": ("IMSREP_STATE_DIR", "elsewhere"),
    "flower_user": ("IMSREP_FLOWER_USER", "ops"),
    "flower_password": ("IMSREP_FLOWER_PASSWORD", "a-long-flower-password"),
    "log_level": ("IMSREP_LOG_LEVEL", "DEBUG"),
    "log_format": ("IMSREP_LOG_FORMAT", "json"),
}


@pytest.mark.parametrize("setting", LAUNCHER_SETTINGS)
def test_every_launcher_setting_reaches_the_services_command_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    variable, value = LAUNCHER_SETTINGS[setting]
    monkeypatch.setenv(variable, value)
    monkeypatch.chdir(tmp_path)
    state_dir = Path(load_settings().state_dir)  # what imsrep up runs with
    stack = LocalStack(StackOptions(state_dir=state_dir))
    plan = {s.name: s for s in stack.plan()}
    worker, beat, flower = plan["worker"].argv, plan["beat"].argv, plan["flower"]
    env = stack.service_env()
    settings = load_settings()
    assert worker[worker.index("--concurrency") + 1] == str(settings.worker_concurrency)
    assert beat[beat.index("-s") + 1] == str(tmp_path / settings.state_dir / "celerybeat-schedule")
    assert f"--db={tmp_path / settings.state_dir / 'flower.db'}" in flower.argv
    assert plan["redis"].argv[plan["redis"].argv.index("--dir") + 1] == str(tmp_path / settings.state_dir / "redis")
    assert flower_auth(stack, flower) == [f"{settings.flower_user}:{stack.info.flower_password}"]
    assert flower.env["IMSREP_REDIS_URL"] == stack.info.redis_url and "redis://" not in " ".join(flower.argv)
    # Settings the processes read themselves reach them through the environment the stack gives them (Flower's
    # password: through its file, to Flower alone).
    own_path = ("IMSREP_STATE_DIR", "IMSREP_FLOWER_PASSWORD")
    assert env.get(variable, os.environ[variable]) == value or variable in own_path
    assert getattr(stack.service_settings(), setting) == getattr(settings, setting) or setting == "state_dir"


def flower_auth(stack: LocalStack, flower: Service) -> list[str]:
    """The ``basic_auth`` Flower takes from its options file (``--conf``), run as Flower runs it, in the
    environment the stack gives Flower."""
    options = next(arg.removeprefix("--conf=") for arg in flower.argv if arg.startswith("--conf="))
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("IMSREP_")}
    given = {k: v for k, v in {**stack.service_env(), **flower.env}.items() if v is not None}
    with mock.patch.dict(os.environ, {**inherited, **given}, clear=True):
        return runpy.run_path(options)["basic_auth"]


def test_flowers_password_is_in_a_file_for_flower_alone(tmp_path: Path) -> None:
    stack = LocalStack(StackOptions(state_dir=tmp_path), settings=load_settings())
    plan = {s.name: s for s in stack.plan()}
    flower = plan["flower"]
    password = stack.info.flower_password
    path = Path(flower.env["IMSREP_FLOWER_PASSWORD_FILE"])
    assert path.read_text() == password + "\n" and path.stat().st_mode & 0o777 == 0o600
    assert flower_auth(stack, flower) == [f"{stack.info.flower_user}:{password}"]
    for service in plan.values():  # on no command line, in no environment
        env = {**stack.service_env(), **service.env} if service.app else dict(service.env)
        assert password not in " ".join(service.argv) and password not in str(env), service.name


def test_the_simulator_secrets_never_reach_a_command_line(tmp_path: Path) -> None:
    options = StackOptions(state_dir=tmp_path, simulator={"iam_password": "sim-iam-password", "copy_seconds": 2})
    stack = LocalStack(options, settings=load_settings())
    simulator = {s.name: s for s in stack.plan()}["simulator"]
    secrets_ = [stack.info.simulator_access_key, stack.info.simulator_secret_key, "sim-iam-password"]
    assert not [s for s in secrets_ if any(s in arg for arg in simulator.argv)]
    assert simulator.env["IMSREP_SIM_ACCESS_KEY"] == stack.info.simulator_access_key
    assert simulator.env["IMSREP_SIM_IAM_PASSWORD"] == "sim-iam-password"
    assert simulator.argv[simulator.argv.index("--copy-seconds") + 1] == "2"


def test_a_port_in_use_is_refused_with_the_option_to_change_it(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServiceError, match=rf"already in use: {port} \(api; --api-port\)"):
            _stack(tmp_path)._port("api", port)


def test_every_port_in_use_is_named_at_once_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as api, socket.socket() as flower:
        for s in (api, flower):
            s.bind(("127.0.0.1", 0))
            s.listen()
        ports = {"api": api.getsockname()[1], "flower": flower.getsockname()[1], "redis": free_port()}
        stack = LocalStack(StackOptions(state_dir=tmp_path, ports={**ports, "simulator": free_port()}))
        with pytest.raises(ServiceError) as caught:
            stack.start()
    assert f"{ports['api']} (api; --api-port), {ports['flower']} (flower; --flower-port);" in str(caught.value)
    assert not stack.processes  # nothing was started


def test_a_configured_redis_that_does_not_answer_stops_up_at_once_naming_the_setting(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    stack = _stack(tmp_path, redis_url=f"redis://:secret-pw@127.0.0.1:{port}/0")
    with pytest.raises(ServiceError) as caught:
        stack._check_configured_redis(timeout=0.5)
    message = str(caught.value)
    assert f"IMSREP_REDIS_URL names (127.0.0.1:{port}) does not answer: ConnectionError" in message
    assert "unset it (and REDIS_URL) so that imsrep up runs a Redis of its own" in message
    assert "secret-pw" not in message


def test_more_simulator_regions_are_every_accounts_destinations(tmp_path: Path) -> None:
    stack = LocalStack(StackOptions(state_dir=tmp_path, demo=True, simulator_regions=("cn-south-1",)))
    planned = {service.name: service for service in stack.plan()}
    port = stack.port("simulator-cn-south-1")
    assert planned["simulator"].argv[-4:] == ["--region", "cn-south-1", "--region-port", f"cn-south-1={port}"]
    env = stack.service_env()
    assert env["IMSREP_ACCOUNTS__DEFAULT__REGIONS__CN_SOUTH_1__IMS_ENDPOINT"] == f"http://127.0.0.1:{port}"
    assert env["IMSREP_ACCOUNTS__DEFAULT__AGENCY_NAME"] == "ims_admin_agency"
    assert stack.info.simulator_regions == {"cn-south-1": f"http://127.0.0.1:{port}"}


def test_the_simulators_accounts_may_share_with_its_other_projects_and_copy_to_its_regions(tmp_path: Path) -> None:
    options = StackOptions(
        state_dir=tmp_path,
        demo=True,
        simulator_project_ids=services.EXAMPLE_PROJECTS,
        simulator_regions=services.EXAMPLE_REGIONS,
        simulator_accounts={"extra": "e" * 32},
    )
    stack = LocalStack(options)
    stack.plan()
    env = {k: v for k, v in stack.service_env().items() if v is not None}
    assert env["IMSREP_ACCOUNTS__DEFAULT__SHARE_PROJECTS"] == services.SIMULATOR_SHARE_PROJECT
    assert env["IMSREP_ACCOUNTS__EXTRA__SHARE_PROJECTS"] == ",".join(services.EXAMPLE_PROJECTS)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        account = load_settings().accounts["default"]
    # The guardrails the examples need: the share project, and the second region by copy_regions' default.
    assert account.share_projects == [services.SIMULATOR_SHARE_PROJECT]
    assert region_breach("default", account, services.SIMULATOR_SECOND_REGION) is None


def test_a_simulator_account_may_live_in_another_region_served_by_that_regions_port(tmp_path: Path) -> None:
    south = services.SIMULATOR_SECOND_REGION
    options = StackOptions(
        state_dir=tmp_path,
        use_simulator=True,
        simulator_regions=services.EXAMPLE_REGIONS,
        simulator_accounts={"north": "a" * 32, "south": "b" * 32},
        simulator_account_regions={"south": south},
    )
    stack = LocalStack(options, settings=load_settings())
    argv = next(s for s in stack.plan() if s.name == "simulator").argv
    projects = [argv[i + 1] for i, flag in enumerate(argv) if flag == "--project-id"]
    # The region's default project stays its first (the source account's cross-region copies land there).
    assert projects == [services.SIMULATOR_PROJECT_ID, "a" * 32, f"{south}={default_project_id_for(south)}",
                        f"{south}={'b' * 32}"]  # fmt: skip
    env = stack.service_env()
    assert env["IMSREP_ACCOUNTS__SOUTH__REGION"] == south
    assert env["IMSREP_ACCOUNTS__SOUTH__IMS_ENDPOINT"] == stack.info.simulator_regions[south]
    assert env["IMSREP_ACCOUNTS__SOUTH__REGIONS__CN_NORTH_4__IMS_ENDPOINT"] == stack.info.simulator_url
    assert env["IMSREP_ACCOUNTS__NORTH__IMS_ENDPOINT"] == stack.info.simulator_url
    assert "IMSREP_ACCOUNTS__SOUTH__REGIONS__CN_SOUTH_1__IMS_ENDPOINT" not in env
    bad = StackOptions(state_dir=tmp_path / "bad", use_simulator=True, simulator_accounts={"x": "c" * 32},
                       simulator_account_regions={"x": "eu-west-0"})  # fmt: skip
    with pytest.raises(ServiceError, match="eu-west-0"):
        LocalStack(bad, settings=load_settings()).plan()


def test_a_sentinel_topology_is_a_master_its_replicas_and_sentinels(tmp_path: Path) -> None:
    spec = SentinelSpec(master="mymaster", replicas=2, sentinels=3, down_after_ms=1500, failover_timeout_ms=4000)
    stack = LocalStack(StackOptions(state_dir=tmp_path, sentinel=spec), settings=load_settings())
    plan = {s.name: s for s in stack.plan()}
    stores = ["redis", "redis-replica-1", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3"]
    assert [name for name, s in plan.items() if s.data_store] == stores
    replica = plan["redis-replica-2"].argv
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["127.0.0.1", str(stack.port("redis"))]
    assert "--appendonly" in replica and "--sentinel" in plan["sentinel-1"].argv
    config = (tmp_path / "sentinel-2" / "sentinel.conf").read_text()
    assert f"sentinel monitor mymaster 127.0.0.1 {stack.port('redis')} 2" in config  # a majority of three
    assert "down-after-milliseconds mymaster 1500" in config and "failover-timeout mymaster 4000" in config
    sentinels = ";".join(f"sentinel://127.0.0.1:{stack.port(f'sentinel-{n}')}" for n in (1, 2, 3))
    assert stack.info.redis_url == f"{sentinels}/0" and stack.info.redis_sentinel_master == "mymaster"
    env = stack.service_env()
    assert env["IMSREP_REDIS_URL"] == stack.info.redis_url and env["IMSREP_REDIS_SENTINEL_MASTER"] == "mymaster"
    assert stack.service_settings().redis_sentinel_master == "mymaster"
    # Without Sentinel no master name is passed on (an inherited one is removed), and one Redis is the only store.
    single = LocalStack(StackOptions(state_dir=tmp_path / "single"), settings=load_settings())
    assert [s.name for s in single.plan() if s.data_store] == ["redis"]
    assert single.service_env()["IMSREP_REDIS_SENTINEL_MASTER"] is None


def test_redis_passwords_reach_the_servers_and_sentinels_in_private_files_only(tmp_path: Path) -> None:
    settings = load_settings(redis_password="redis-pass-9c1", redis_sentinel_password="sentinel-pass-4e7")
    stack = LocalStack(StackOptions(state_dir=tmp_path, sentinel=SentinelSpec()), settings=settings)
    plan = {s.name: s for s in stack.plan()}
    assert not [name for name, s in plan.items() if any("pass-" in arg for arg in s.argv)]  # never on a command line
    for name in ("redis", "redis-replica-1"):
        config = Path(plan[name].argv[1])
        assert config.read_text() == 'requirepass "redis-pass-9c1"\nmasterauth "redis-pass-9c1"\n'
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
    sentinel = Path(plan["sentinel-1"].argv[1])
    assert 'sentinel auth-pass imsrep "redis-pass-9c1"' in sentinel.read_text()
    assert 'requirepass "sentinel-pass-4e7"' in sentinel.read_text() and stat.S_IMODE(sentinel.stat().st_mode) == 0o600
    # Sentinel rewrites its file mode 0644: its directory is the owner's alone, as is each server's.
    stores = [s for s in plan.values() if s.data_store]
    assert {stat.S_IMODE(Path(s.argv[1]).parent.stat().st_mode) for s in stores} == {0o700}
    env = stack.service_env()  # the services get them in their environment
    assert env["IMSREP_REDIS_PASSWORD"] == "redis-pass-9c1"
    assert env["IMSREP_REDIS_SENTINEL_PASSWORD"] == "sentinel-pass-4e7"


def test_the_stacks_own_redis_gets_strong_random_passwords_that_no_stack_json_holds(tmp_path: Path) -> None:
    stack = LocalStack(StackOptions(state_dir=tmp_path, sentinel=SentinelSpec()), settings=load_settings())
    plan = {s.name: s for s in stack.plan()}
    server, sentinel = stack.passwords.server, stack.passwords.sentinel
    assert server and sentinel and server != sentinel and min(len(server), len(sentinel)) >= 40
    other = LocalStack(StackOptions(state_dir=tmp_path / "other"), settings=load_settings())
    assert other.passwords.server not in (None, server) and other.passwords.sentinel is None  # no Sentinel there
    assert f'requirepass "{server}"' in Path(plan["redis"].argv[1]).read_text()
    assert f'requirepass "{sentinel}"' in Path(plan["sentinel-3"].argv[1]).read_text()
    assert not [name for name, s in plan.items() if any(p in arg for arg in s.argv for p in (server, sentinel))]
    env, settings = stack.service_env(), stack.service_settings()
    assert (env["IMSREP_REDIS_PASSWORD"], env["IMSREP_REDIS_SENTINEL_PASSWORD"]) == (server, sentinel)
    assert env["IMSREP_REDIS_PASSWORD_FILE"] is None  # an inherited file would clash with the password given
    assert {server, sentinel} <= set(settings.secret_values())  # what the log redaction hides
    # A client of the stack reads them from files only the user can read, that stack.json names.
    files = (stack.info.redis_password_file, stack.info.redis_sentinel_password_file)
    assert [Path(f).read_text() for f in files] == [f"{server}\n", f"{sentinel}\n"]
    assert {stat.S_IMODE(Path(f).stat().st_mode) for f in files} == {0o600}
    stack._write_stack_file()
    text = (tmp_path / "stack.json").read_text()
    assert server not in text and sentinel not in text
    target = read_stack_file(tmp_path).redis_target()
    assert (target.password, target.sentinel_password, target.sentinel_master) == (server, sentinel, "imsrep")


def test_a_configured_redis_url_is_kept_without_its_password_and_the_password_goes_apart(tmp_path: Path) -> None:
    stack = _stack(tmp_path, redis_url="redis://:url-pass-77@redis.internal:6380/2")
    assert stack.info.redis_url == "redis://redis.internal:6380/2" and stack.info.redis_password_file is None
    env = stack.service_env()
    assert env["IMSREP_REDIS_URL"] == "redis://redis.internal:6380/2" and env["IMSREP_REDIS_PASSWORD"] == "url-pass-77"
    assert stack.service_settings().redis_password.get_secret_value() == "url-pass-77"
