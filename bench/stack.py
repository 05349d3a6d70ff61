"""One benchmark stack: ``LocalStack`` (embedded Redis, simulator, API, worker, beat, Flower) with as many
simulator projects as a scenario needs, each an account, and the clients a scenario drives it with."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import psutil

from cli.api_client import ApiClient, ApiTarget
from cli.demo import simulator_account
from cli.processes import wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackInfo, StackOptions
from config.settings import AccountSettings
from worker.data import DataLayer, open_data_layer
from worker.ims.client import ImsClient


def project_id(account: str) -> str:
    """A fixed 32-hex project ID per account name, so runs are comparable."""
    return hashlib.md5(f"bench-{account}".encode()).hexdigest()  # noqa: S324 - an ID, not a secret


def write_catalog(path: Path, sizes: list[int]) -> Path:
    """A catalogue of ordinary images ``bench-00000``... with the given ``__image_size`` (bytes), every project."""
    images = [{"name": f"bench-{i:05d}", "__image_size": str(size)} for i, size in enumerate(sizes)]
    path.write_text(json.dumps({"default": {"images": images}}))
    return path


@dataclass
class BenchStack:
    local: LocalStack
    info: StackInfo
    api: httpx.Client
    sim: httpx.Client
    projects: dict[str, str]  # account -> project ID

    def account(self, name: str) -> AccountSettings:
        return simulator_account(self.info).model_copy(update={"project_id": self.projects[name]})

    def image_ids(self, account: str) -> list[str]:
        """The bench catalogue's image IDs of an account's project, in catalogue order."""
        with ImsClient(self.account(account), connect_timeout=5, read_timeout=60) as ims:
            images = [i for i in ims.iter_images() if i.name.startswith("bench-")]
        return [i.id for i in sorted(images, key=lambda i: i.name)]

    def all_image_ids(self, account: str) -> list[str]:
        """Every private image of an account's project, in listing order."""
        with ImsClient(self.account(account), connect_timeout=5, read_timeout=60) as ims:
            return [i.id for i in ims.iter_images(**{"__imagetype": "private"})]

    def submit(self, items: list[dict[str, Any]]) -> tuple[dict[str, Any], float]:
        """POST /v1/batches; the answer and the seconds it took."""
        return self.submit_body({"items": items})

    def submit_body(self, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """POST /v1/batches with any body (a selector, say); the answer and the seconds it took."""
        started = time.perf_counter()
        response = self.api.post("/v1/batches", json=body)
        took = time.perf_counter() - started
        response.raise_for_status()
        return response.json(), took

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self.api.get(f"/v1/batches/{batch_id}").json()

    def wait_batch(self, batch_id: str, timeout: float, done: str = "done") -> None:
        wait_until(lambda: _finished(self.batch(batch_id), done), timeout, f"batch {batch_id}", interval=0.25)

    def items(self, batch_id: str) -> list[dict[str, Any]]:
        with ApiClient(ApiTarget(self.info.api_url, self.info.api_token)) as client:
            return list(client.items(batch_id))

    def jobs(self) -> list[dict[str, Any]]:
        return self.sim.get("/_sim/jobs").json()["jobs"]

    def stats(self) -> dict[str, Any]:
        return self.sim.get("/_sim/stats").json()

    @cached_property
    def data(self) -> DataLayer:
        return open_data_layer(self.info.redis_target(), self.local.settings.key_prefix)

    def processes(self, name: str) -> list[psutil.Process]:
        """The service's process and its children (a worker's pool processes)."""
        root = psutil.Process(self.local.processes[name].pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self, name: str) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.processes(name))

    def stack_cpu_seconds(self) -> float:
        """Every service's CPU seconds (worker, Redis, simulator, API, Flower, beat): on one machine they share its
        cores, so a hand-off costs what all of them spend on it (docs/performance.md, "What bounds many projects")."""
        return sum(self.cpu_seconds(name) for name in self.local.processes)

    def rss_mib(self, name: str) -> float:
        return sum(p.memory_info().rss for p in self.processes(name)) / 2**20


def _finished(batch: dict[str, Any], done: str) -> bool:
    if done == "done":
        return bool(batch["done"])
    # "validated": nothing left before the slot queue.
    return all(batch["counts"].get(state, 0) == 0 for state in ("accepted", "validating"))


@contextmanager
def bench_stack(
    state_dir: Path, accounts: list[str], simulator: dict[str, object], env: dict[str, str] | None = None
) -> Iterator[BenchStack]:
    """A running stack whose simulator serves ``default`` plus one project per name in ``accounts``."""
    extra = {name: project_id(name) for name in accounts if name != "default"}
    options = StackOptions(
        state_dir=state_dir,
        use_simulator=True,
        simulator={"image_quota": 10_000_000, "log_level": "warning", **simulator},
        simulator_accounts=extra,
        env=dict(env or {}),
        ready_timeout=120,
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options) as local:
        info = local.start()
        headers = {"Authorization": f"Bearer {info.api_token}"}
        with (
            httpx.Client(base_url=info.api_url, headers=headers, timeout=300) as api,
            httpx.Client(base_url=info.simulator_url, timeout=60) as sim,
        ):
            projects = {"default": info.simulator_project_id or "", **extra}
            yield BenchStack(local, info, api, sim, projects)
