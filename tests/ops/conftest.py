"""What an operator sees: one ``LocalStack`` (Redis, simulator, API, worker, beat, Flower as real processes) with
the demo batch in flight, and Debian's headless Chromium to look at Flower the way a person would.

Chromium is installed (when missing, and allowed) before the stack starts, so no test's timing depends on how long
that took; a test that needs copies in flight submits its own. Copies take a while (``COPY_SECONDS``), and the
simulator injects some transient errors so the retry counters have something to count.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from cli import services
from cli.demo import SCENARIOS, build_specs, resolve_image_ids, simulator_account
from cli.processes import wait_until
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackInfo, StackOptions
from tests.support import debian_package, fast_env

COPY_SECONDS = 5  # three rounds of 5 slots (15 s) outlast the browser test's look at Flower (about 7 s here)
# The test stacks' timing profile (tests.support.FAST_TIMINGS): the test that waits for every batch to end waits
# seconds, not up to a reconcile interval (30 s) or a probe interval (60 s). Polls of these 5 s copies need not be
# quicker than one a second.
OPS_ENV = fast_env(poll_initial_delay=1, poll_min_interval=0.5)
CHROMIUM = "/usr/bin/chromium"
# Headless, no sandbox (we run as root in CI), and nothing that reaches the network on its own.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@dataclass
class OpsStack:
    info: StackInfo
    api: httpx.Client
    image_ids: dict[str, str]  # the simulator's default catalogue: name -> ID
    items: list[dict]  # the demo batch: every scenario and refusal
    batch_id: str = ""

    def submit(self, items: list[dict]) -> str:
        accepted = self.api.post("/v1/batches", json={"items": items})
        assert accepted.status_code == 202, accepted.text
        return accepted.json()["batch_id"]

    def flower(self, path: str, **kwargs: object) -> httpx.Response:
        auth = (self.info.flower_user, self.info.flower_password)
        return httpx.get(f"{self.info.flower_url}{path}", auth=auth, timeout=30, **kwargs)

    def flower_page(self, path: str) -> str:
        """``http://user:password@host:port/path``: Chromium answers Flower's basic-auth challenge with these."""
        parts = urlsplit(self.info.flower_url)
        return f"{parts.scheme}://{self.info.flower_user}:{self.info.flower_password}@{parts.netloc}{path}"

    def batch(self, batch_id: str | None = None) -> dict:
        return self.api.get(f"/v1/batches/{batch_id or self.batch_id}").json()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The metrics test runs first in this tier: it waits for every batch of the shared stack to end, and before the
    browser test has added its own copies that is the demo batch and its own three items, not three more rounds of
    the account's slots. Every other test keeps its place (this hook sees the whole session's items)."""
    first = [item for item in items if item.nodeid.startswith("tests/ops/test_metrics_live.py")]
    if not first:
        return
    rest = [item for item in items if item not in first]
    at = next((n for n, item in enumerate(rest) if item.nodeid.startswith("tests/ops/")), len(rest))
    items[:] = [*rest[:at], *first, *rest[at:]]


@pytest.fixture(scope="session")
def chromium_missing() -> str | None:
    """Install Debian's chromium when it is missing and we may, before any stack of this tier starts (it can take
    minutes); why it is not there, or None."""
    return debian_package(CHROMIUM, "chromium")


@pytest.fixture(scope="session")
def ops_stack(tmp_path_factory: pytest.TempPathFactory, chromium_missing: str | None) -> Iterator[OpsStack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("ops-stack"),
        use_simulator=True,
        simulator={"copy_seconds": COPY_SECONDS, "image_quota": 100_000},
        # What the demo batch's rows need, as imsrep up and the demo serve it: the second region, the share project.
        simulator_project_ids=services.EXAMPLE_PROJECTS,
        simulator_regions=services.EXAMPLE_REGIONS,
        env=OPS_ENV,
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options) as local:
        info = local.start()
        # Flower answers before its event receiver is connected; what it misses then it never shows. A worker's
        # heartbeat reaching it (flower_worker_online) means the receiver is on, so every task of the tier is seen.
        online = lambda: re.search(r"^flower_worker_online\{[^}]*\} 1\.0$", _flower_metrics(info), re.M)  # noqa: E731
        wait_until(online, 60, "Flower receiving the workers' events")
        image_ids = resolve_image_ids(simulator_account(info), [s.image for s in SCENARIOS])
        httpx.post(f"{info.simulator_url}/_sim/faults", json={"error_rate": 0.15}).raise_for_status()
        headers = {"Authorization": f"Bearer {info.api_token}"}
        with httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as api:
            items = [spec.model_dump(exclude_none=True) for spec in build_specs(image_ids)]
            ops = OpsStack(info, api, image_ids, items)
            ops.batch_id = ops.submit(ops.items)
            yield ops


def _flower_metrics(info: StackInfo) -> str:
    return httpx.get(f"{info.flower_url}/metrics", timeout=5).text


class Chromium:
    """Debian's chromium driven from its command line: a DOM dump or a screenshot of one URL per call."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile

    def _run(self, url: str, *args: str) -> str:
        # The virtual time budget lets the page's own XHRs (Flower's tables load from its REST API) finish.
        argv = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--virtual-time-budget=3000", *args, url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    def dom(self, url: str) -> str:
        return self._run(url, "--dump-dom")

    def screenshot(self, url: str, path: Path, size: str = "1280,720") -> Path:
        self._run(url, f"--screenshot={path}", f"--window-size={size}")
        return path

    def dom_until(self, url: str, check: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        """Dump the page again and again until ``check(dom)`` holds; fail at the deadline."""
        seen = {"dom": ""}

        def ready() -> bool:
            seen["dom"] = self.dom(url)
            return bool(check(seen["dom"]))

        wait_until(ready, timeout, what, interval=0.5)
        return seen["dom"]


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory, chromium_missing: str | None) -> Chromium:
    if chromium_missing:
        pytest.skip(chromium_missing)
    return Chromium(tmp_path_factory.mktemp("chromium-profile"))
