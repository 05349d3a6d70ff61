"""Principals: from the settings, from a file re-read when it changes, and IMSREP_API_TOKENS as admins; whose token a
bearer token is, compared in constant time against every one."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest

from api import principals as module
from api.principals import PrincipalRegistry
from config.settings import Role, SettingsError, load_settings

PROJECT = "0123456789abcdef0123456789abcdef"
ACCOUNTS = {name: {"project_id": PROJECT, "access_key": "AK", "secret_key": "SK"} for name in ("prod", "dev", "shared")}
ALICE = "alice-token-0123456789"
BOB = "bob-token-9876543210ab"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _settings(**overrides: object):
    return load_settings(accounts=ACCOUNTS, **overrides)


def _write(path: Path, text: str) -> None:
    """Write and move the modification time on: two writes within one clock tick must still differ."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_a_principal_from_the_environment_has_its_role_and_accounts(monkeypatch) -> None:
    monkeypatch.setenv("IMSREP_PRINCIPALS__ALICE__TOKEN_SHA256", _sha(ALICE))
    monkeypatch.setenv("IMSREP_PRINCIPALS__ALICE__ROLE", "submitter")
    monkeypatch.setenv("IMSREP_PRINCIPALS__ALICE__ACCOUNTS", "prod,dev")
    registry = PrincipalRegistry(_settings())
    alice = registry.authenticate(ALICE)
    assert alice is not None and alice.name == "alice" and alice.role is Role.SUBMITTER
    assert alice.accounts == frozenset({"prod", "dev"})
    assert alice.outside(["prod", "shared"]) == ["shared"]
    assert registry.authenticate(BOB) is None
    assert registry.authenticate(_sha(ALICE)) is None  # the digest is not a token


def test_api_tokens_are_admins_of_every_account() -> None:
    registry = PrincipalRegistry(_settings(api_tokens="first-token-aaaa,second-token-bbbb"))
    second = registry.authenticate("second-token-bbbb")
    assert second is not None and second.name == "api-token-2" and second.role is Role.ADMIN
    assert second.accounts is None and second.sees(["prod", "anything"])


def test_every_digest_is_compared_in_constant_time_even_after_a_match(monkeypatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    registry = PrincipalRegistry(_settings(api_tokens="first-token-aaaa,second-token-bbbb,third-token-cccc"))
    monkeypatch.setattr(module.hmac, "compare_digest", spy)
    assert registry.authenticate("first-token-aaaa") is not None
    assert len(calls) == 3
    calls.clear()
    assert registry.authenticate("first-token-aaab") is None and len(calls) == 3
    assert registry.authenticate("tökén") is None and registry.authenticate("") is None


@pytest.mark.parametrize(
    ("principal", "rule"),
    [
        ({"role": "reader", "accounts": "prod"}, "exactly one of token_sha256"),
        ({"token": ALICE, "token_sha256": _sha(ALICE), "accounts": "prod"}, "exactly one of token_sha256"),
        ({"token_sha256": "ABC", "accounts": "prod"}, "__TOKEN_SHA256: String should match"),
        ({"token": "short", "accounts": "prod"}, "at least 16 characters"),
        ({"token": ALICE, "role": "owner", "accounts": "prod"}, "__ROLE: Input should be"),
        ({"token": ALICE, "accounts": "prod,elsewhere"}, "not configured accounts: elsewhere"),
        ({"token": ALICE, "accounts": "*,prod"}, "must stand alone"),
    ],
)
def test_a_bad_principal_is_refused_at_start_up_naming_the_variable(principal, rule) -> None:
    with pytest.raises(SettingsError) as refused:
        _settings(principals={"alice": principal})
    assert "IMSREP_PRINCIPALS__ALICE" in str(refused.value) and rule in str(refused.value)
    assert ALICE not in str(refused.value)


def test_no_principal_at_all_is_refused() -> None:
    with pytest.raises(SettingsError, match="no API principals configured"):
        PrincipalRegistry(_settings())


def test_two_principals_with_one_token_are_refused() -> None:
    same = {"token": ALICE, "accounts": "prod"}
    with pytest.raises(SettingsError, match="same token"):
        PrincipalRegistry(_settings(principals={"alice": same, "alias": same}))


def test_a_token_rotated_in_the_file_works_at_once_and_the_old_one_stops(tmp_path) -> None:
    path = tmp_path / "principals.toml"
    _write(path, f'[alice]\ntoken_sha256 = "{_sha(ALICE)}"\nrole = "operator"\naccounts = ["prod"]\n')
    registry = PrincipalRegistry(_settings(principals_file=path))
    assert registry.authenticate(ALICE).role is Role.OPERATOR
    _write(path, f'[alice]\ntoken_sha256 = "{_sha(BOB)}"\nrole = "operator"\naccounts = ["prod"]\n')
    assert registry.authenticate(ALICE) is None
    assert registry.authenticate(BOB).name == "alice"


def test_a_file_that_turns_invalid_keeps_what_was_read_before(tmp_path, caplog) -> None:
    path = tmp_path / "principals.toml"
    _write(path, f'[alice]\ntoken_sha256 = "{_sha(ALICE)}"\nrole = "reader"\naccounts = ["prod"]\n')
    registry = PrincipalRegistry(_settings(principals_file=path))
    _write(path, f'[alice]\ntoken_sha256 = "{_sha(BOB)}"\nrole = "root"\n')  # a typo: no such role
    assert registry.authenticate(ALICE).role is Role.READER and registry.authenticate(BOB) is None
    assert "keeping the principals read before" in caplog.text and "principal 'alice'" in caplog.text
    path.unlink()  # gone: nothing new to read, the last valid contents stay
    assert registry.authenticate(ALICE) is not None


def test_a_bad_file_is_refused_at_start_up(tmp_path) -> None:
    path = tmp_path / "principals.toml"
    _write(path, '[alice]\ntoken = "alice-token-0123456789"\naccounts = ["nowhere"]\n')
    with pytest.raises(SettingsError, match="principal 'alice': accounts: not configured accounts: nowhere"):
        PrincipalRegistry(_settings(principals_file=path))
    _write(path, "not toml [")
    with pytest.raises(SettingsError, match="cannot be read"):
        PrincipalRegistry(_settings(principals_file=path))
