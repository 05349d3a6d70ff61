"""Campaigns through the real stack (Redis, simulator, API, worker, beat as processes), on a simulator serving a
catalogue of 2,000 mixed images: the three selector campaigns make exactly the copies their filters imply (checked
against the simulator's own listing and jobs), a plan gives each item the verdict the run then reaches, a CLI
submission killed between chunks and run again makes no duplicate, and retention removes a finished batch and
nothing else."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from typer.testing import CliRunner

from cli.demo import simulator_account
from cli.main import app
from cli.processes import wait_until
from cli.redis_auth import read_password
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackInfo, StackOptions
from simulator.catalog.generate import generate
from tests.support import FAST_RATE_ENV, fast_env
from worker.ims.client import ImsClient
from worker.ims.models import Image

pytestmark = pytest.mark.integration

MIX = {
    "ordinary": 0.8, "encrypted": 0.06, "legacy": 0.04, "iso": 0.03, "full_ecs": 0.03, "not_active": 0.02,
    "oversized": 0.02,
}  # fmt: skip
IMAGES = 2000
# The test stacks' timing profile and request rate, the first poll sooner for copies this short (0.2 s).
FAST = {**fast_env(poll_initial_delay=0.2), **FAST_RATE_ENV}
COPYABLE_REASONS = {"ISO_IMAGE", "FULL_ECS_IMAGE", "IMAGE_NOT_ACTIVE", "IMAGE_TOO_LARGE"}


@dataclass
class Campaigns:
    info: StackInfo
    api: httpx.Client
    sim: httpx.Client
    ims: ImsClient

    def imsrep(self, *args: str) -> Any:
        return CliRunner().invoke(app, [*args, "--api", self.info.api_url, "--token", self.info.api_token])

    def listing(self) -> list[Image]:
        """The simulator's own view of the project's private images, all pages."""
        return list(self.ims.iter_images(**{"__imagetype": "private"}))

    def jobs(self) -> list[dict[str, Any]]:
        return self.sim.get("/_sim/jobs", params={"project_id": self.info.simulator_project_id}).json()["jobs"]

    def items(self, batch_id: str) -> list[dict[str, Any]]:
        found, cursor = [], 0
        while cursor is not None:
            page = self.api.get(f"/v1/batches/{batch_id}/items", params={"cursor": cursor, "limit": 1000}).json()
            found += page["items"]
            cursor = page["next_cursor"]
        return found

    def wait_done(self, batch_id: str, timeout: float = 180) -> dict[str, Any]:
        wait_until(lambda: self.api.get(f"/v1/batches/{batch_id}").json()["done"], timeout, f"batch {batch_id}")
        return self.api.get(f"/v1/batches/{batch_id}").json()

    def plan(self, body: dict[str, Any], timeout: float = 120) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        response = self.api.post("/v1/batches", json={**body, "plan": True})
        assert response.status_code == 202, response.text
        plan_id = response.json()["plan_id"]
        url = f"/v1/plans/{plan_id}"
        wait_until(lambda: self.api.get(url).json()["state"] != "planning", timeout, f"plan {plan_id}")
        verdicts, cursor = [], 0
        while cursor is not None:
            page = self.api.get(url, params={"cursor": cursor, "limit": 1000}).json()
            verdicts += page["items"]
            cursor = page["next_cursor"]
        return page, verdicts


def _stack(tmp: Path, simulator: dict[str, object], env: dict[str, str]) -> Iterator[Campaigns]:
    options = StackOptions(
        state_dir=tmp / "state",
        use_simulator=True,
        simulator=simulator,
        env=env,
        stop_grace=DISCARD_STOP_GRACE,
        flower=False,  # none of its tests looks at Flower (tests/ops does)
    )
    with LocalStack(options) as local:
        info = local.start()
        headers = {"Authorization": f"Bearer {info.api_token}"}
        with (
            httpx.Client(base_url=info.api_url, headers=headers, timeout=60) as api,
            httpx.Client(base_url=info.simulator_url, timeout=60) as sim,
            ImsClient(simulator_account(info), connect_timeout=5, read_timeout=60) as ims,
        ):
            yield Campaigns(info, api, sim, ims)


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaigns]:
    tmp = tmp_path_factory.mktemp("campaigns")
    catalog = tmp / "mixed.json"
    catalog.write_text(json.dumps(generate(IMAGES, MIX, seed=11, keys=["old-key", "other-key"])))
    simulator = {"catalog": catalog, "copy_seconds": 0.2, "image_quota": 100_000, "log_level": "warning"}
    yield from _stack(tmp, simulator, FAST)


def _campaign(c: Campaigns, *args: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``imsrep select ARGS --wait``; returns the batch, its items, and the copy jobs it made."""
    jobs_before = {job["job_id"] for job in c.jobs()}
    result = c.imsrep("select", *args, "--wait")
    batch_id = result.stdout.split("Batch ")[1].split(":")[0]
    batch = c.api.get(f"/v1/batches/{batch_id}").json()
    made = [job for job in c.jobs() if job["job_id"] not in jobs_before]
    assert result.exit_code == (0 if batch["counts"]["succeeded"] == batch["total"] else 1), result.output
    return batch, c.items(batch_id), made


def _copyable(image: Image) -> bool:
    small = (image.size_bytes or 0) <= 128 * 1024**3
    return image.status == "active" and not image.is_full_ecs and not image.is_iso and small


def _check(batch: dict, items: list[dict], made: list[dict], selected: list[Image]) -> None:
    """One item per selected image, a copy of exactly the copyable ones (one job each), the rest refused."""
    assert batch["selection"]["state"] == "done" and batch["selection"]["listed"] >= len(selected)
    assert Counter(i["image_id"] for i in items) == Counter(image.id for image in selected)
    copyable = {image.id for image in selected if _copyable(image)}
    assert Counter(job["source_image_id"] for job in made) == Counter(copyable)
    for item in items:
        if item["image_id"] in copyable:
            assert item["state"] == "succeeded" and item["new_image_id"], item
        else:
            assert item["state"] == "rejected" and item["reason"] in COPYABLE_REASONS, item


def test_rekey_campaign_copies_exactly_the_images_encrypted_with_the_old_key(campaigns: Campaigns) -> None:
    old = campaigns.ims.find_key("old-key").key_id
    app_key = campaigns.ims.find_key("app-key").key_id
    selected = [image for image in campaigns.listing() if image.cmk_id == old]
    assert 30 < len(selected) < 100
    batch, items, made = _campaign(
        campaigns, "--encrypted-with", "old-key", "--kms-key", "app-key", "--name", "{name}-rekeyed"
    )
    _check(batch, items, made, selected)
    assert {job["cmk_id"] for job in made} == {app_key}
    assert {job["image_name"] for job in made} == {f"{image.name}-rekeyed" for image in selected}


def test_fast_create_campaign_copies_every_image_without_it(campaigns: Campaigns) -> None:
    selected = [image for image in campaigns.listing() if not image.supports_fast_create]
    batch, items, made = _campaign(campaigns, "--no-fast-create")
    _check(batch, items, made, selected)
    assert Counter(i["reason"] for i in items if i["state"] == "rejected") == {"ISO_IMAGE": IMAGES * MIX["iso"]}
    copies = [campaigns.ims.get_image(i["new_image_id"]) for i in items if i["new_image_id"]][:20]
    assert all(copy is not None and copy.supports_fast_create for copy in copies)


def test_decrypt_campaign_makes_plain_copies_of_every_encrypted_image(campaigns: Campaigns) -> None:
    selected = [image for image in campaigns.listing() if image.is_encrypted]
    batch, items, made = _campaign(campaigns, "--encrypted", "--decrypt", "--name", "{name}-plain")
    _check(batch, items, made, selected)
    assert {job["cmk_id"] for job in made} == {None}
    assert all(job["image_name"].endswith("-plain") for job in made)


def test_a_plan_gives_each_item_the_verdict_the_run_reaches(campaigns: Campaigns) -> None:
    listing = campaigns.listing()
    by_kind: dict[str, list[Image]] = {}
    for image in listing:
        kind, _, number = image.name.rpartition("-")
        if number.isdigit():  # a catalogue image, not a copy an earlier campaign made
            by_kind.setdefault(kind, []).append(image)
    picked = [image for images in by_kind.values() for image in images[:4]]
    items = [{"image_id": image.id, "name": f"plan-{n}"} for n, image in enumerate(picked)]
    plain = by_kind["ordinary"][0].id
    items += [
        {"image_id": plain, "kms_key": "disabled-key", "name": "plan-disabled"},
        {"image_id": plain, "kms_key": "no-such-key", "name": "plan-nokey"},
        {"image_id": "00000000-0000-4000-8000-000000000abc", "name": "plan-missing"},
    ]
    plan, verdicts = campaigns.plan({"items": items})
    assert plan["state"] == "done" and len(verdicts) == len(items)
    batch_id = campaigns.api.post("/v1/batches", json={"items": items}).json()["batch_id"]
    campaigns.wait_done(batch_id)
    ran = campaigns.items(batch_id)

    def outcome(item: dict) -> tuple:
        return ("copy", None) if item["state"] == "succeeded" else ("refused", item["reason"])

    assert [(v["verdict"], v.get("reason")) for v in verdicts] == [outcome(i) for i in ran]
    expected = {None, "ISO_IMAGE", "FULL_ECS_IMAGE", "IMAGE_NOT_ACTIVE", "IMAGE_TOO_LARGE", "KEY_DISABLED",
                "KEY_NOT_FOUND", "IMAGE_NOT_FOUND"}  # fmt: skip
    assert {outcome(i)[1] for i in ran} == expected
    summary = plan["summary"]
    assert summary["would_copy"] == sum(i["state"] == "succeeded" for i in ran)
    [account] = summary["accounts"]
    assert account["quota"]["quota"] == 100_000 and account["forecast"][0]["slots"] == 5


def test_a_selector_plan_matches_its_run_and_the_cli_shows_it(campaigns: Campaigns, tmp_path: Path) -> None:
    # A creation-time window around an image that cannot be copied: a few dozen images, some of them refused.
    listing = sorted(campaigns.listing(), key=lambda image: image.created_at)
    middle = next(n for n, image in enumerate(listing) if n > 20 and not _copyable(image))
    start, end = listing[middle - 20].created_at, listing[middle + 20].created_at
    after, before = start.isoformat(), end.isoformat()
    window = [image for image in listing if start <= image.created_at < end]
    results = tmp_path / "plan.json"
    shown = campaigns.imsrep("plan", "--filter", f"created_after={after}", "--filter", f"created_before={before}",
                             "--name", "{name}-w", "--results", str(results))  # fmt: skip
    assert shown.exit_code == 1, shown.output  # some selected images cannot be copied
    assert "Items that would not be copied" in shown.stdout and "nothing was copied" in shown.stdout
    planned = {r["image_id"]: (r["state"], r["reason"]) for r in json.loads(results.read_text())}
    assert set(planned) == {image.id for image in window}
    batch, items, _ = _campaign(campaigns, "--created-after", after, "--created-before", before, "--name", "{name}-w")
    ran = {i["image_id"]: ("copy" if i["state"] == "succeeded" else "refused", i["reason"]) for i in items}
    assert planned == ran and len(ran) == batch["total"]


class _ChunkProxy(BaseHTTPRequestHandler):
    """Forwards to the API; once the second chunk is stored, answers nothing until told (the client is killed)."""

    target = ""
    posts = 0
    hold = threading.Event()
    stored = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        self._forward()

    def do_POST(self) -> None:  # noqa: N802
        type(self).posts += 1
        self._forward(hold=type(self).posts == 2)

    def _forward(self, hold: bool = False) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type",
                                                                            "idempotency-key")}  # fmt: skip
        answer = httpx.request(self.command, self.target + self.path, content=body, headers=headers, timeout=60)
        if hold:
            type(self).stored.set()
            type(self).hold.wait(60)
            return
        self.send_response(answer.status_code)
        for name in ("content-type", "idempotent-replayed"):
            if name in answer.headers:
                self.send_header(name, answer.headers[name])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *_: object) -> None:
        pass


def test_a_submission_killed_between_chunks_and_run_again_makes_no_duplicate(
    campaigns: Campaigns, tmp_path: Path
) -> None:
    images = [image for image in campaigns.listing() if _copyable(image)][:9]
    manifest = tmp_path / "killed.csv"
    manifest.write_text("image_id,name\n" + "".join(f"{image.id},killed-{n}\n" for n, image in enumerate(images)))
    _ChunkProxy.target = campaigns.info.api_url
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ChunkProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    argv = ["submit", str(manifest), "--chunk-size", "3", "--token", campaigns.info.api_token]
    imsrep = str(Path(sys.executable).with_name("imsrep"))
    run = subprocess.Popen([imsrep, *argv, "--api", f"http://127.0.0.1:{proxy.server_port}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        # Chunk 1 answered; chunk 2 stored by the API but its answer never comes back: kill the CLI there.
        assert _ChunkProxy.stored.wait(60)
        run.send_signal(signal.SIGKILL)
        out, _ = run.communicate(timeout=30)
    finally:
        _ChunkProxy.hold.set()
        proxy.shutdown()
    assert "Chunk 1/3" in out and "Chunk 2/3" not in out

    again = campaigns.imsrep("submit", str(manifest), "--chunk-size", "3", "--wait")
    assert again.exit_code == 0, again.output
    assert again.stdout.count("(an earlier run's; not submitted again)") == 2  # chunks 1 and 2
    assert "Chunk 3/3 (lines 8-10): batch" in again.stdout
    batch_ids = [line.split("batch ")[1].split()[0] for line in again.stdout.splitlines() if line.startswith("Chunk")]
    items = [item for batch_id in batch_ids for item in campaigns.items(batch_id)]
    assert Counter(i["name"] for i in items) == Counter(f"killed-{n}" for n in range(9))
    copies = Counter(job["image_name"] for job in campaigns.jobs() if job["image_name"].startswith("killed-"))
    assert copies == Counter(f"killed-{n}" for n in range(9))


@pytest.fixture(scope="module")
def short_retention(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaigns]:
    env = {**FAST, "IMSREP_RETENTION_DAYS": str(3 / 86_400), "IMSREP_RETENTION_SWEEP_SECONDS": "1"}
    simulator = {"copy_seconds": 0.2, "copy_seconds_per_gb": 1, "image_quota": 100_000}
    yield from _stack(tmp_path_factory.mktemp("retention"), simulator, env)


def test_retention_removes_a_finished_batch_and_nothing_else(short_retention: Campaigns) -> None:
    c = short_retention
    images = {image.name: image.id for image in c.listing()}
    quick = c.api.post("/v1/batches", json={"items": [{"image_id": images["debian-12-base"]}]}).json()
    # 128 GiB at a second per GiB: still copying while the quick batch expires.
    slow = c.api.post("/v1/batches", json={"items": [{"image_id": images["edge-128g"]}]}).json()
    c.wait_done(quick["batch_id"])
    password = read_password(c.info.redis_password_file)  # the stack's own Redis asks for one
    with redis.Redis.from_url(c.info.redis_url, password=password, decode_responses=True) as r:
        wait_until(lambda: c.api.get(f"/v1/batches/{quick['batch_id']}").status_code == 404, 30, "expiry")
        leftovers = [k for k in r.scan_iter("imsrep:*") if quick["batch_id"] in k or quick["item_ids"][0] in k]
        assert leftovers == []
        slow_item = c.api.get(f"/v1/replications/{slow['item_ids'][0]}").json()
        assert slow_item["state"] == "replicating" and c.api.get(f"/v1/batches/{slow['batch_id']}").status_code == 200
        assert r.exists(f"imsrep:item:{slow['item_ids'][0]}")
    assert c.api.get(f"/v1/replications/{quick['item_ids'][0]}").status_code == 404
