"""The whole pipeline through the API over HTTP: every seed scenario and refusal, the 5-slot limit under a 200-item
batch, cancel, retry, validation and auth. What IMS did is checked on the simulator's side."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.demo import SCENARIOS, UNKNOWN, UNKNOWN_IMAGE_ID, Scenario
from cli.main import app

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

REGION = "cn-north-4"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _item(stack: Stack, scenario: Scenario) -> dict[str, Any]:
    image_id = UNKNOWN_IMAGE_ID if scenario.image == UNKNOWN else stack.image_ids[scenario.image]
    return scenario.spec(image_id).model_dump(exclude_none=True)


@pytest.fixture(scope="module")
def scenario_results(stack: Stack) -> dict[str, dict[str, Any]]:
    """The demo's scenarios (every seed scenario and every refusal) as one batch, run to the end: title -> item."""
    accepted = stack.submit([_item(stack, s) for s in SCENARIOS])
    stack.wait_done(accepted["batch_id"])
    items = {item["item_id"]: item for item in stack.items(accepted["batch_id"])}
    return {s.title + s.image: items[item_id] for s, item_id in zip(SCENARIOS, accepted["item_ids"], strict=True)}


def _result(results: dict[str, dict[str, Any]], title: str, image: str) -> dict[str, Any]:
    return results[title + image]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.title} ({s.image})")
def test_scenario_reaches_expected_state(scenario_results: dict, scenario: Scenario) -> None:
    item = _result(scenario_results, scenario.title, scenario.image)
    assert (item["state"], item["reason"]) == (scenario.expected_state, scenario.expected_reason), item
    if scenario.expected_state == "succeeded":
        assert item["new_image_id"]
    else:
        assert item["new_image_id"] is None and item["message"]


def test_refused_items_never_reach_the_copy_call(stack: Stack, scenario_results: dict) -> None:
    refused = {s.name or f"copy_{REGION}_{s.image}" for s in SCENARIOS if s.expected_state == "rejected"}
    copied = {job["image_name"] for job in stack.jobs()}
    assert not refused & copied


def _copy(stack: Stack, results: dict, title: str, image: str) -> Any:
    item = _result(results, title, image)
    copy = stack.ims.get_image(item["new_image_id"])
    assert copy is not None and copy.status == "active"
    return copy


def _key_id(stack: Stack, alias: str) -> str:
    key = stack.ims.find_key(alias)
    assert key is not None
    return key.key_id


def test_decrypt_gives_an_unencrypted_copy(stack: Stack, scenario_results: dict) -> None:
    source = stack.ims.get_image(stack.image_ids["euleros-encrypted"])
    assert source is not None and source.is_encrypted
    copy = _copy(stack, scenario_results, "decrypt: encrypted source, no key", "euleros-encrypted")
    assert not copy.is_encrypted
    assert copy.name == f"copy_{REGION}_euleros-encrypted"


def test_rekey_encrypts_the_copy_with_the_new_key(stack: Stack, scenario_results: dict) -> None:
    copy = _copy(stack, scenario_results, "re-key: encrypted source, new key", "euleros-encrypted")
    assert copy.cmk_id == _key_id(stack, "app-key")
    assert copy.cmk_id != _key_id(stack, "old-key")
    assert copy.name == "euleros-app-key"


def test_encrypt_uses_the_default_key(stack: Stack, scenario_results: dict) -> None:
    copy = _copy(stack, scenario_results, "encrypt: plain source, ims/default", "ubuntu-22.04-web")
    assert copy.cmk_id == _key_id(stack, "ims/default")


def test_fast_create_is_enabled_on_the_copy(stack: Stack, scenario_results: dict) -> None:
    source = stack.ims.get_image(stack.image_ids["centos-6-legacy"])
    assert source is not None and not source.supports_fast_create
    copy = _copy(stack, scenario_results, "Fast Create for a legacy image", "centos-6-legacy")
    assert copy.supports_fast_create
    assert copy.name == f"copy_{REGION}_centos-6-legacy"


def test_custom_name_and_description(stack: Stack, scenario_results: dict) -> None:
    scenario = next(s for s in SCENARIOS if s.title == "custom name and description")
    copy = _copy(stack, scenario_results, scenario.title, scenario.image)
    assert (copy.name, copy.description) == (scenario.name, scenario.description)
    assert not copy.is_encrypted


def test_200_items_keep_within_five_slots_without_img0060(stack: Stack) -> None:
    names = ["ubuntu-22.04-web", "centos-7-app", "debian-12-base", "centos-6-legacy"]
    items = [{"image_id": stack.image_ids[names[i % len(names)]], "name": f"bulk-{i:03d}"} for i in range(200)]
    jobs_before = len(stack.jobs())
    accepted = stack.submit(items)
    assert accepted["accepted"] == 200
    status = stack.wait_done(accepted["batch_id"], timeout=240)
    assert status["counts"]["succeeded"] == 200, status["counts"]
    # Exactly one copy job per item, never more than five at once, and IMS never refused a copy (IMG.0060).
    assert len(stack.jobs()) - jobs_before == 200
    project = stack.project()
    assert project["peak_concurrent_jobs"] <= project["job_limit"] == 5
    copy_answers = stack.sim.get("/_sim/stats").json()["by_endpoint"].get("copy", {})
    assert not [status for status in copy_answers if not str(status).startswith("2")], copy_answers


def test_cancel_stops_items_that_have_not_reached_ims(stack: Stack) -> None:
    items = [{"image_id": stack.image_ids["debian-12-base"], "name": f"cancel-{i:02d}"} for i in range(40)]
    accepted = stack.submit(items)
    response = stack.api.post(f"/v1/batches/{accepted['batch_id']}/cancel")
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["cancelled"] >= 1
    status = stack.wait_done(accepted["batch_id"])
    assert status["counts"]["cancelled"] == outcome["cancelled"]
    assert status["counts"]["cancelled"] + status["counts"]["succeeded"] == 40
    for item in stack.items(accepted["batch_id"]):
        if item["state"] == "cancelled":
            assert item["reason"] == "CANCELLED" and item["job_id"] is None


def test_failed_copies_can_be_retried(stack: Stack, faults: Any) -> None:
    faults(fail_rate=1.0)
    items = [{"image_id": stack.image_ids["centos-7-app"], "name": f"retry-{i}"} for i in range(3)]
    batch_id = stack.submit(items)["batch_id"]
    status = stack.wait_done(batch_id)
    assert status["counts"]["failed"] == 3, status["counts"]
    assert {item["reason"] for item in stack.items(batch_id)} == {"IMS_JOB_FAILED"}
    faults(fail_rate=0.0)
    response = stack.api.post(f"/v1/batches/{batch_id}/retry")
    assert response.status_code == 202 and response.json()["retried"] == 3
    status = stack.wait_done(batch_id)
    assert status["counts"]["succeeded"] == 3, status["counts"]
    assert {item["attempt"] for item in stack.items(batch_id)} == {2}


def test_bad_items_are_refused_whole_with_every_problem(stack: Stack) -> None:
    good = {"image_id": stack.image_ids["centos-7-app"]}
    body = {"items": [good, {"image_id": "not-a-uuid"}, {**good, "name": " edge spaces "}, {**good, "bogus": 1}]}
    response = stack.api.post("/v1/batches", json=body)
    assert response.status_code == 422
    problems = {(p["index"], p["field"]) for p in response.json()["errors"]}
    assert problems == {(1, "image_id"), (2, "name"), (3, "bogus")}
    assert "nothing was stored" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [("not json", 422), ("[]", 422), ('{"items": []}', 422), ('{"items": [{}], "extra": 1}', 422)],
)
def test_malformed_bodies_get_a_4xx(stack: Stack, body: str, status: int) -> None:
    response = stack.api.post("/v1/batches", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_unknown_batch_is_404(stack: Stack) -> None:
    assert stack.api.get(f"/v1/batches/{'0' * 32}").status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic x"}])
def test_requests_without_a_valid_token_are_401(stack: Stack, headers: dict[str, str]) -> None:
    response = httpx.get(f"{stack.info.api_url}/v1/batches/{'0' * 32}", headers=headers)
    assert response.status_code == 401
    assert "wrong-token" not in response.text


def test_health_and_readiness_are_open(stack: Stack) -> None:
    assert httpx.get(f"{stack.info.api_url}/healthz").status_code == 200
    ready = httpx.get(f"{stack.info.api_url}/readyz")
    assert ready.status_code == 200 and ready.json()["workers"] >= 1


def test_counts_cover_every_item(stack: Stack, scenario_results: dict) -> None:
    states = Counter(item["state"] for item in scenario_results.values())
    assert states == Counter(s.expected_state for s in SCENARIOS)


def _imsrep(stack: Stack, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--api", stack.info.api_url, "--token", stack.info.api_token])


def test_cli_submit_wait_exits_0_and_writes_results(stack: Stack, tmp_path: Path) -> None:
    manifest = tmp_path / "good.csv"
    rows = [f"{stack.image_ids[name]},cli-{i}" for i, name in enumerate(["centos-7-app", "debian-12-base"])]
    manifest.write_text("image_id,name\n" + "\n".join(rows) + "\n")
    results = tmp_path / "results.csv"
    result = _imsrep(stack, "submit", str(manifest), "--wait", "--results", str(results))
    assert result.exit_code == 0, result.output
    with results.open(newline="") as f:
        written = list(csv.DictReader(f))
    assert [(r["line"], r["state"]) for r in written] == [("2", "succeeded"), ("3", "succeeded")]
    assert all(r["new_image_id"] and r["item_id"] for r in written)


def test_the_example_manifest_matches_the_stack_and_the_demo(stack: Stack, tmp_path: Path) -> None:
    """examples/demo-manifest.csv holds literal image IDs: they must be the local stack's, row for row."""
    results = tmp_path / "results.json"
    result = _imsrep(stack, "submit", str(EXAMPLES / "demo-manifest.csv"), "--wait", "--results", str(results))
    assert result.exit_code == 1, result.output  # the refusals are expected, so not everything succeeded
    written = json.loads(results.read_text())
    assert [(r["state"], r["reason"]) for r in written] == [(s.expected_state, s.expected_reason) for s in SCENARIOS]
