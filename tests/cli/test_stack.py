"""LocalStack's decisions, without starting anything: which Redis, simulator or not, which secrets, which env."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli.processes import ServiceError
from cli.stack import LocalStack, StackInfo, StackOptions
from config.settings import load_settings

ACCOUNT = {"prod": {"project_id": "f" * 32, "access_key": "AK", "secret_key": "SK"}}


def _stack(tmp_path: Path, demo: bool = False, **settings: object) -> LocalStack:
    return LocalStack(StackOptions(state_dir=tmp_path, demo=demo), settings=load_settings(**settings))


def test_redis_is_started_unless_one_is_configured(tmp_path: Path) -> None:
    assert _stack(tmp_path).own_redis
    assert not _stack(tmp_path, redis_url="redis://elsewhere:6379/0").own_redis


def test_simulator_when_no_account_is_configured_or_for_the_demo(tmp_path: Path) -> None:
    assert _stack(tmp_path).simulator_mode
    assert not _stack(tmp_path, accounts=ACCOUNT).simulator_mode
    assert _stack(tmp_path, demo=True, accounts=ACCOUNT).simulator_mode
    forced = LocalStack(StackOptions(state_dir=tmp_path, use_simulator=False), settings=load_settings())
    assert not forced.simulator_mode


def test_configured_secrets_are_used_except_by_the_demo(tmp_path: Path) -> None:
    configured = {"api_tokens": "a-long-configured-token", "flower_password": "a-long-flower-password"}
    assert _stack(tmp_path, **configured)._secrets() == ("a-long-configured-token", "a-long-flower-password")
    token, password = _stack(tmp_path, demo=True, **configured)._secrets()
    assert token != "a-long-configured-token" and password != "a-long-flower-password"
    assert len(token) >= 24 and len(password) >= 18
    assert _stack(tmp_path)._secrets() != _stack(tmp_path)._secrets()  # random each time


def test_simulator_mode_drops_inherited_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for field, value in {"PROJECT_ID": "f" * 32, "ACCESS_KEY": "AKPROD", "SECRET_KEY": "SKPROD"}.items():
        monkeypatch.setenv(f"IMSREP_ACCOUNTS__PROD__{field}", value)
    monkeypatch.setenv("IMSREP_DEFAULT_ACCOUNT", "prod")
    info = StackInfo("http://api", "t", "http://flower", "admin", "p", "redis://r", str(tmp_path), str(tmp_path),
                     simulator_url="http://sim:1", simulator_access_key="AK1", simulator_secret_key="SK1",
                     simulator_project_id="e" * 32, simulator_region="cn-north-4")  # fmt: skip
    env = _stack(tmp_path, demo=True)._simulator_account_env(info)
    assert env["IMSREP_ACCOUNTS__PROD__PROJECT_ID"] is None and env["IMSREP_ACCOUNTS__PROD__SECRET_KEY"] is None
    assert env["IMSREP_DEFAULT_ACCOUNT"] == "default"
    assert env["IMSREP_ACCOUNTS__DEFAULT__IMS_ENDPOINT"] == env["IMSREP_ACCOUNTS__DEFAULT__KMS_ENDPOINT"] == "http://sim:1"
    assert env["IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY"] == "AK1"


def test_demo_flag_only_for_the_demo(tmp_path: Path) -> None:
    info = StackInfo("http://api", "t", "http://flower", "admin", "p", "redis://r", str(tmp_path), str(tmp_path))
    assert _stack(tmp_path, demo=True)._service_env(info)["IMSREP_DEMO"] == "true"
    assert "IMSREP_DEMO" not in _stack(tmp_path)._service_env(info)


def test_a_port_in_use_is_refused_with_the_option_to_change_it(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServiceError, match=f"port {port} for api is already in use.*--api-port"):
            _stack(tmp_path)._port("api", port)
