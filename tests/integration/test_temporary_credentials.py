"""Temporary credentials, renewed while a batch runs (docs/ims-api.md §8, docs/simulator.md): the simulator hands out
temporary AK/SK that live a few seconds, and a batch runs through a real worker across several renewals with none of
its items failing. Renewed by the worker from the metadata service, as on an ECS with an agency; or rewritten in the
files of its ``…_FILE`` settings, as Docker and Kubernetes rotate secrets, and read again by the worker. One stack
serves both; each test runs a worker of its own."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from cli import services
from cli.demo import resolve_image_ids, simulator_account
from cli.processes import wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackOptions
from tests.support import FAST_RATE_ENV, fast_env
from worker.ims.credentials import SECURITY_KEY_PATH

pytestmark = pytest.mark.integration

LIFETIME = 4  # seconds: renewed every 2 s (half their life), so the batch spans several renewals
SLOTS = 10  # the simulator's job limit and the account's slots, raised from 5 to keep the test short
ACCOUNT = "IMSREP_ACCOUNTS__DEFAULT__"
SOURCES = ["ubuntu-22.04-web", "centos-7-app", "debian-12-base", "centos-6-legacy"]
# The credentials the files hold, by the name of the field in the metadata service's answer.
FILES = {"ACCESS_KEY": "access", "SECRET_KEY": "secret", "SECURITY_TOKEN": "securitytoken"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The simulator, its temporary credentials living ``LIFETIME`` seconds, Redis, the API and beat, shared by the
    tests: each starts the worker whose credentials it tries (the simulator account's permanent AK/SK removed)."""
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("temporary") / "stack",
        use_simulator=True,
        simulator={
            "copy_seconds": 0.25,
            "image_quota": 100_000,
            "job_limit": SLOTS,
            "temporary_credentials_seconds": LIFETIME,
        },
        env={
            **fast_env(poll_initial_delay=0.25),
            **FAST_RATE_ENV,
            # One pool process: its reads of the credentials are then its first read and its renewals.
            "IMSREP_WORKER_CONCURRENCY": "1",
            f"{ACCOUNT}SLOT_LIMIT": str(SLOTS),
        },
        workers=(),
        flower=False,
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options) as local:
        local.start()
        yield local


@contextmanager
def worker(stack: LocalStack, name: str, credentials: dict[str, str]) -> Iterator[Path]:
    """A worker whose account takes its credentials as ``credentials`` say, running until the block ends; its log.
    Only the worker gets them: the API needs none."""
    settings = {f"{ACCOUNT}ACCESS_KEY": None, f"{ACCOUNT}SECRET_KEY": None, **credentials}
    service = services.worker(stack.service_settings(), name)
    process = stack.launch(dataclasses.replace(service, env={**service.env, **settings}))
    try:
        stack.wait_ready(["api"])  # a worker's heartbeat seen
        yield Path(stack.info.log_dir) / f"{name}.log"
    finally:
        process.stop(timeout=5)


def _metadata_reads(stack: LocalStack) -> int:
    stats = httpx.get(f"{stack.info.simulator_url}/_sim/stats", timeout=30).json()["by_endpoint"]
    return stats.get("securitykey", {}).get("200", 0)


def _run_batch(info: object, items: int) -> dict[str, int]:
    """Submit ``items`` copies and wait until the batch is done; its counts."""
    headers = {"Authorization": f"Bearer {info.api_token}"}  # type: ignore[attr-defined]
    # Sources the pipeline copies without a refusal (tests/integration/test_pipeline.py's bulk run).
    ids = resolve_image_ids(simulator_account(info), SOURCES)  # type: ignore[arg-type]
    batch = [{"image_id": ids[SOURCES[i % len(SOURCES)]], "name": f"temporary-{i:03d}"} for i in range(items)]
    with httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as api:  # type: ignore[attr-defined]
        response = api.post("/v1/batches", json={"items": batch})
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["done"], 240, f"batch {batch_id}")
        return api.get(f"/v1/batches/{batch_id}").json()["counts"]


def test_a_batch_finishes_across_credential_renewals_with_none_failed(stack: LocalStack) -> None:
    """From the metadata service, as on an ECS with an agency."""
    metadata = {f"{ACCOUNT}CREDENTIALS_SOURCE": "metadata", f"{ACCOUNT}METADATA_ENDPOINT": stack.info.simulator_url}
    before = _metadata_reads(stack)
    with worker(stack, "worker-metadata", metadata) as log:  # type: ignore[arg-type]
        counts = _run_batch(stack.info, 300)
        reads = _metadata_reads(stack) - before
        obtained = log.read_text().count("temporary credentials obtained")
    assert counts["succeeded"] == 300 and counts["failed"] == 0, counts
    # The first read, then one per renewal: at least two renewals happened while the batch ran.
    assert reads - 1 >= 2, reads
    assert obtained == reads


class Rotation:
    """What Kubernetes or a sidecar does with temporary credentials: new ones from the metadata service written over
    the secret files (each replaced whole, one after the other) every half of their life, before the old expire."""

    def __init__(self, simulator_url: str, folder: Path) -> None:
        self.url = simulator_url + SECURITY_KEY_PATH
        self.paths = {name: folder / name.lower() for name in FILES}
        self.done = threading.Event()
        self.first_expires_at: datetime | None = None  # of the credentials written before the worker started

    def write(self) -> None:
        credential = httpx.get(self.url, timeout=10).json()["credential"]
        self.first_expires_at = self.first_expires_at or datetime.fromisoformat(credential["expires_at"])
        for name, path in self.paths.items():
            path.with_suffix(".new").write_text(credential[FILES[name]] + "\n")
            os.replace(path.with_suffix(".new"), path)

    def run(self) -> None:
        while not self.done.wait(LIFETIME / 2):  # the rotation's own pace, until the test is done
            self.write()


def test_a_batch_finishes_while_its_credential_files_are_rotated(stack: LocalStack, tmp_path: Path) -> None:
    """The worker reads the files of ``…_ACCESS_KEY_FILE``, ``…_SECRET_KEY_FILE`` and ``…_SECURITY_TOKEN_FILE`` again
    when they change: a batch runs while they are rotated, and a second one, begun once the credentials the worker
    started with have expired (which the simulator refuses), can only succeed on credentials read again."""
    rotation = Rotation(stack.info.simulator_url or "", tmp_path)
    rotation.write()  # before the worker starts, which reads them at its start
    files = {f"{ACCOUNT}{name}_FILE": str(path) for name, path in rotation.paths.items()}
    # Rotated from the start, as a sidecar does: credentials written before a slow start would expire meanwhile.
    rotator = threading.Thread(target=rotation.run, daemon=True)
    rotator.start()
    try:
        with worker(stack, "worker-files", files) as worker_log:
            first = _run_batch(stack.info, 50)
            assert rotation.first_expires_at is not None
            expired = rotation.first_expires_at
            wait_until(lambda: datetime.now(timezone.utc) > expired, 3 * LIFETIME, "the first credentials to expire")
            second = _run_batch(stack.info, 50)
            log = worker_log.read_text()
    finally:
        rotation.done.set()
        rotator.join(10)
    assert first["succeeded"] == 50 and first["failed"] == 0, first
    assert second["succeeded"] == 50 and second["failed"] == 0, second
    assert "credentials read again from" in log, log[-2000:]
