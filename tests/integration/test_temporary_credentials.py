"""An account whose credentials come from the metadata service, as on an ECS with an agency: the simulator hands out
temporary AK/SK that live a few seconds, and a 300-item batch runs through a real worker across several renewals
with none of its items failing (docs/ims-api.md §8, docs/simulator.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.demo import resolve_image_ids, simulator_account
from cli.processes import free_port, wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackOptions
from tests.support import FAST_RATE_ENV, fast_env

pytestmark = pytest.mark.integration

ITEMS = 300
LIFETIME = 4  # seconds: renewed every 2 s (half their life), so the batch spans several renewals
SLOTS = 10  # the simulator's job limit and the account's slots, raised from 5 to keep the test short
ACCOUNT = "IMSREP_ACCOUNTS__DEFAULT__"
SOURCES = ["ubuntu-22.04-web", "centos-7-app", "debian-12-base", "centos-6-legacy"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    port = free_port()  # the metadata address must be known before the services start
    env = {
        **fast_env(poll_initial_delay=0.25),
        **FAST_RATE_ENV,
        # One pool process: the metadata service's reads are then its first read and its renewals.
        "IMSREP_WORKER_CONCURRENCY": "1",
        f"{ACCOUNT}SLOT_LIMIT": str(SLOTS),
        f"{ACCOUNT}ACCESS_KEY": None,
        f"{ACCOUNT}SECRET_KEY": None,
        f"{ACCOUNT}CREDENTIALS_SOURCE": "metadata",
        f"{ACCOUNT}METADATA_ENDPOINT": f"http://127.0.0.1:{port}",
    }
    options = StackOptions(
        state_dir=tmp_path / "stack",
        ports={"simulator": port},
        use_simulator=True,
        simulator={
            "copy_seconds": 0.25,
            "image_quota": 100_000,
            "job_limit": SLOTS,
            "temporary_credentials_seconds": LIFETIME,
        },
        env=env,  # type: ignore[arg-type]  # None removes the simulator account's permanent AK/SK
        flower=False,
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options) as local:
        local.start()
        yield local


def test_a_batch_finishes_across_credential_renewals_with_none_failed(stack: LocalStack) -> None:
    info = stack.info
    headers = {"Authorization": f"Bearer {info.api_token}"}
    # Sources the pipeline copies without a refusal (tests/integration/test_pipeline.py's bulk run).
    ids = resolve_image_ids(simulator_account(info), SOURCES)
    items = [{"image_id": ids[SOURCES[i % len(SOURCES)]], "name": f"temporary-{i:03d}"} for i in range(ITEMS)]
    with (
        httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as api,
        httpx.Client(base_url=info.simulator_url or "", timeout=30) as sim,
    ):
        response = api.post("/v1/batches", json={"items": items})
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["done"], 240, f"batch {batch_id}")
        status = api.get(f"/v1/batches/{batch_id}").json()
        reads = sim.get("/_sim/stats").json()["by_endpoint"]["securitykey"]["200"]
    assert status["counts"]["succeeded"] == ITEMS and status["counts"]["failed"] == 0, status["counts"]
    # The first read, then one per renewal: at least two renewals happened while the batch ran.
    assert reads - 1 >= 2, reads
    assert (Path(info.log_dir) / "worker.log").read_text().count("temporary credentials obtained") == reads
