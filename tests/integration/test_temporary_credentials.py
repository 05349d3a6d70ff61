"""Temporary credentials, renewed while a batch runs (docs/ims-api.md §8, docs/simulator.md): the simulator hands out
temporary AK/SK that live a few seconds, and a batch runs through a real worker across several renewals with none of
its items failing. Renewed by the worker from the metadata service, as on an ECS with an agency; or rewritten in the
files of its ``…_FILE`` settings, as Docker and Kubernetes rotate secrets, and read again by the worker."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli import services
from cli.demo import resolve_image_ids, simulator_account
from cli.processes import free_port, wait_until
from cli.stack import LocalStack, StackOptions
from tests.support import FAST_RATE_ENV, fast_env
from worker.ims.credentials import SECURITY_KEY_PATH

pytestmark = pytest.mark.integration

LIFETIME = 4  # seconds: renewed every 2 s (half their life), so the batch spans several renewals
SLOTS = 10  # the simulator's job limit and the account's slots, raised from 5 to keep the test short
ACCOUNT = "IMSREP_ACCOUNTS__DEFAULT__"
SOURCES = ["ubuntu-22.04-web", "centos-7-app", "debian-12-base", "centos-6-legacy"]
# The credentials the files hold, by the name of the field in the metadata service's answer.
FILES = {"ACCESS_KEY": "access", "SECRET_KEY": "secret", "SECURITY_TOKEN": "securitytoken"}


def _stack(tmp_path: Path, env: dict[str, str | None], **options: object) -> LocalStack:
    """A stack on the simulator, its temporary credentials living ``LIFETIME`` seconds, the account's permanent AK/SK
    removed (None) and ``env`` laid over."""
    return LocalStack(
        StackOptions(
            state_dir=tmp_path / "stack",
            use_simulator=True,
            simulator={
                "copy_seconds": 0.25,
                "image_quota": 100_000,
                "job_limit": SLOTS,
                "temporary_credentials_seconds": LIFETIME,
            },
            env={  # type: ignore[arg-type]  # None removes the simulator account's permanent AK/SK
                **fast_env(poll_initial_delay=0.25),
                **FAST_RATE_ENV,
                # One pool process: its reads of the credentials are then its first read and its renewals.
                "IMSREP_WORKER_CONCURRENCY": "1",
                f"{ACCOUNT}SLOT_LIMIT": str(SLOTS),
                f"{ACCOUNT}ACCESS_KEY": None,
                f"{ACCOUNT}SECRET_KEY": None,
                **env,
            },
            flower=False,
            stop_grace=2,
            **options,  # type: ignore[arg-type]
        )
    )


def _run_batch(info: object, items: int, during: threading.Event | None = None) -> dict[str, int]:
    """Submit ``items`` copies and wait until the batch is done; its counts. ``during`` is set once it is done."""
    headers = {"Authorization": f"Bearer {info.api_token}"}  # type: ignore[attr-defined]
    # Sources the pipeline copies without a refusal (tests/integration/test_pipeline.py's bulk run).
    ids = resolve_image_ids(simulator_account(info), SOURCES)  # type: ignore[arg-type]
    batch = [{"image_id": ids[SOURCES[i % len(SOURCES)]], "name": f"temporary-{i:03d}"} for i in range(items)]
    with httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as api:  # type: ignore[attr-defined]
        response = api.post("/v1/batches", json={"items": batch})
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["done"], 240, f"batch {batch_id}")
        if during is not None:
            during.set()
        return api.get(f"/v1/batches/{batch_id}").json()["counts"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    port = free_port()  # the metadata address must be known before the services start
    env = {f"{ACCOUNT}CREDENTIALS_SOURCE": "metadata", f"{ACCOUNT}METADATA_ENDPOINT": f"http://127.0.0.1:{port}"}
    with _stack(tmp_path, env, ports={"simulator": port}) as local:
        local.start()
        yield local


def test_a_batch_finishes_across_credential_renewals_with_none_failed(stack: LocalStack) -> None:
    info = stack.info
    counts = _run_batch(info, 300)
    with httpx.Client(base_url=info.simulator_url or "", timeout=30) as sim:
        reads = sim.get("/_sim/stats").json()["by_endpoint"]["securitykey"]["200"]
    assert counts["succeeded"] == 300 and counts["failed"] == 0, counts
    # The first read, then one per renewal: at least two renewals happened while the batch ran.
    assert reads - 1 >= 2, reads
    assert (Path(info.log_dir) / "worker.log").read_text().count("temporary credentials obtained") == reads


class Rotation:
    """What Kubernetes or a sidecar does with temporary credentials: new ones from the metadata service written over
    the secret files (each replaced whole, one after the other) every half of their life, before the old expire."""

    def __init__(self, simulator_url: str, folder: Path) -> None:
        self.url = simulator_url + SECURITY_KEY_PATH
        self.paths = {name: folder / name.lower() for name in FILES}
        self.done = threading.Event()
        self.rotations = 0

    def write(self) -> None:
        credential = httpx.get(self.url, timeout=10).json()["credential"]
        for name, path in self.paths.items():
            path.with_suffix(".new").write_text(credential[FILES[name]] + "\n")
            os.replace(path.with_suffix(".new"), path)

    def run(self) -> None:
        while not self.done.wait(LIFETIME / 2):  # the rotation's own pace, until the batch is done
            self.write()
            self.rotations += 1


def test_a_batch_finishes_while_its_credential_files_are_rotated(tmp_path: Path) -> None:
    """The worker reads the files of ``…_ACCESS_KEY_FILE``, ``…_SECRET_KEY_FILE`` and ``…_SECURITY_TOKEN_FILE`` again
    when they change: the batch outlives several sets of credentials, with none of its items failed."""
    with _stack(tmp_path, {}, workers=()) as local:
        local.start()  # the simulator, Redis, the API and beat: the files are written before the worker starts
        rotation = Rotation(local.info.simulator_url or "", tmp_path)
        rotation.write()
        files = {f"{ACCOUNT}{name}_FILE": str(path) for name, path in rotation.paths.items()}
        worker = services.worker(local.service_settings())
        local.launch(dataclasses.replace(worker, env={**worker.env, **files}))  # the worker alone reads them
        local.wait_ready(["api"])  # a worker's heartbeat seen
        rotator = threading.Thread(target=rotation.run, daemon=True)
        rotator.start()
        try:
            counts = _run_batch(local.info, 100, during=rotation.done)
        finally:
            rotation.done.set()
            rotator.join(10)
        log = (Path(local.info.log_dir) / "worker.log").read_text()
    assert counts["succeeded"] == 100 and counts["failed"] == 0, counts
    assert rotation.rotations >= 2, rotation.rotations  # the batch outlived the first credentials by two lives
    assert log.count("credentials read again from") >= 2, log[-2000:]
