"""Flower's options file: its basic_auth is the settings' user and password, the password read like every secret
(from a file here, as compose's Docker secret), and Flower refuses to start without one or with a weak one."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from cli.services import FLOWER_OPTIONS
from config.settings import SettingsError


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("IMSREP_FLOWER_PASSWORD", "IMSREP_FLOWER_PASSWORD_FILE", "IMSREP_FLOWER_USER", "IMSREP_DEMO"):
        monkeypatch.delenv(name, raising=False)


def test_basic_auth_is_the_settings_user_and_password_from_its_file(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "flower_password").write_text("a-long:flower-password\n")
    monkeypatch.setenv("IMSREP_FLOWER_PASSWORD_FILE", str(tmp_path / "flower_password"))
    monkeypatch.setenv("IMSREP_FLOWER_USER", "ops")
    # Flower compares "user:password" whole (flower/views/__init__.py), so a ':' in the password is kept.
    assert runpy.run_path(FLOWER_OPTIONS)["basic_auth"] == ["ops:a-long:flower-password"]


@pytest.mark.parametrize(("password", "refusal"), [(None, "Flower needs a password"), ("admin", "a default or demo")])
def test_flower_refuses_to_start_without_a_good_password(monkeypatch, password: str | None, refusal: str) -> None:
    if password is not None:
        monkeypatch.setenv("IMSREP_FLOWER_PASSWORD", password)
    with pytest.raises(SettingsError, match=f"IMSREP_FLOWER_PASSWORD: {refusal}"):
        runpy.run_path(FLOWER_OPTIONS)
