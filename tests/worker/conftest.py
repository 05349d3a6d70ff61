"""Fixtures for the worker tests: the IMS simulator as a real process.

``tests/conftest.py``'s ``start_simulator`` passes ``http_ok`` to ``ManagedProcess.wait_ready``, which lets the
check's ``ConnectError`` escape while the simulator is still binding its port; this factory waits with
``wait_until`` (which treats a raising check as "not yet") until that is fixed there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.processes import ManagedProcess, free_port, http_ok, python_module, wait_until

REGION = "cn-north-4"
PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
AK, SK = "AKEXAMPLE", "SKEXAMPLE"


@dataclass
class Sim:
    process: ManagedProcess
    url: str
    region: str = REGION
    project_id: str = PROJECT
    access_key: str = AK
    secret_key: str = SK


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    """Factory: a simulator process with the given options (``copy_seconds=0.5``, ``fail_rate=1.0``, ...)."""
    started: list[ManagedProcess] = []

    def start(**options: object) -> Sim:
        port = free_port()
        argv = python_module(
            "simulator", "--host", "127.0.0.1", "--port", str(port), "--region", REGION, "--project-id", PROJECT,
            "--access-key", AK, "--secret-key", SK,
        )  # fmt: skip
        for key, value in options.items():
            argv += ["--" + key.replace("_", "-"), str(value)]
        proc = ManagedProcess(f"simulator-{port}", argv, tmp_path / f"simulator-{port}.log").start()
        started.append(proc)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if not proc.running():
                raise RuntimeError(f"simulator exited:\n{proc.log_tail()}")
            return http_ok(f"{url}/_sim/health")

        wait_until(ready, 30, "the simulator")
        return Sim(proc, url)

    yield start
    for proc in started:
        proc.stop()
