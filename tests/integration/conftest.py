"""The whole system for the pipeline tests: one ``LocalStack`` per session (Redis, simulator, API, worker, beat,
Flower as real processes on free ports), driven only through the API over HTTP; the simulator's own views and a
signed IMS client check what happened on the "cloud" side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from cli import services
from cli.api_client import ApiClient, ApiTarget
from cli.demo import resolve_image_ids, simulator_account
from cli.processes import wait_until
from cli.redis_auth import read_password
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackInfo, StackOptions
from simulator.catalog.default import DEFAULT_IMAGES
from tests.support import FAST_RATE_ENV, fast_env
from worker.ims.client import ImsClient

# Short copies and quick polls keep the suite fast; the quota is out of the way except where a test wants it.
SIMULATOR = {"copy_seconds": 0.25, "image_quota": 100_000}
# The test stacks' timing profile, with the first poll sooner for copies this short (the pool has no forecast yet).
STACK_ENV = {**fast_env(poll_initial_delay=0.25), **FAST_RATE_ENV}


def policy_env(every: int, tick: float) -> dict[str, str]:
    """``STACK_ENV`` for policies that run every ``every`` seconds, looked at by beat every ``tick``."""
    return {**STACK_ENV, "IMSREP_POLICY_MIN_INTERVAL": str(every), "IMSREP_POLICY_TICK_SECONDS": str(tick)}


def forget_all_but_policy(info: StackInfo, policy_id: str) -> None:
    """Redis loses every batch, item, run record and idempotency key of the stack: the policy keeps its own keys."""
    r = redis.Redis.from_url(info.redis_url, password=read_password(info.redis_password_file), decode_responses=True)
    kept = (f"imsrep:policy:{policy_id}", "imsrep:policies", "imsrep:policies:due")
    for key in r.scan_iter("imsrep:*"):
        if key not in kept:
            r.delete(key)
    r.close()


@dataclass
class Stack:
    local: LocalStack
    info: StackInfo
    api: httpx.Client  # authenticated, base URL set
    sim: httpx.Client  # the simulator's unsigned /_sim/ views
    ims: ImsClient  # signed IMS/KMS calls, as the worker makes them
    image_ids: dict[str, str]  # default catalogue: name -> ID

    def submit(self, items: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
        response = self.api.post("/v1/batches", json={"items": items, **body})
        assert response.status_code == 202, response.text
        return response.json()

    def wait_done(self, batch_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait (with a deadline) until every item of the batch is terminal; return the batch status."""
        wait_until(lambda: self.api.get(f"/v1/batches/{batch_id}").json()["done"], timeout, f"batch {batch_id}")
        return self.api.get(f"/v1/batches/{batch_id}").json()

    def items(self, batch_id: str) -> list[dict[str, Any]]:
        with ApiClient(ApiTarget(self.info.api_url, self.info.api_token)) as client:
            return list(client.items(batch_id))

    def project(self) -> dict[str, Any]:
        projects = self.sim.get("/_sim/projects").json()["projects"]
        return next(p for p in projects if p["project_id"] == self.info.simulator_project_id)

    def jobs(self) -> list[dict[str, Any]]:
        return self.sim.get("/_sim/jobs", params={"project_id": self.info.simulator_project_id}).json()["jobs"]

    def set_faults(self, **knobs: float) -> None:
        response = self.sim.post("/_sim/faults", json=knobs)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Two regions and a project to share with, as the demo has them (its scenarios include a cross-region copy
    # and a shared one).
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("stack"),
        use_simulator=True,
        simulator=dict(SIMULATOR),
        simulator_project_ids=services.EXAMPLE_PROJECTS,
        simulator_regions=services.EXAMPLE_REGIONS,
        env=STACK_ENV,
        stop_grace=DISCARD_STOP_GRACE,
        flower=False,  # none of its tests looks at Flower (tests/ops does)
    )
    with LocalStack(options) as local:  # stops every process on the way out, whatever happened
        info = local.start()
        headers = {"Authorization": f"Bearer {info.api_token}"}
        account = simulator_account(info)
        with (
            httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as api,
            httpx.Client(base_url=info.simulator_url, timeout=30) as sim,
            ImsClient(account, connect_timeout=5, read_timeout=30) as ims,
        ):
            names = [image["name"] for image in DEFAULT_IMAGES]
            yield Stack(local, info, api, sim, ims, resolve_image_ids(account, names))


@pytest.fixture
def faults(stack: Stack) -> Iterator[Callable[..., None]]:
    """Set simulator faults for one test; they are switched off again afterwards."""
    yield stack.set_faults
    stack.set_faults(fail_rate=0.0, error_rate=0.0, throttle_rate=0.0, latency=0.0, hang_rate=0.0)
