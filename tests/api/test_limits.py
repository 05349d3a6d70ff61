"""Each principal's limits (docs/teams.md, "Limits"), through the real API process: its request rate on every /v1
route, and its unfinished items at submission; 429 with Retry-After naming the limit, other principals unaffected."""

from __future__ import annotations

import uuid

import httpx
import pytest

from api.principals import Limits, PrincipalRegistry
from config.settings import load_settings
from tests.support import walk_to
from worker.domain.states import ItemState

ALICE, BOB, CAROL = "alice-limits-token-01", "bob-limits-token-0002", "carol-limits-token-03"
LIMITED = {"REQUESTS_PER_SECOND": "0.1", "REQUEST_BURST": "3"}  # the 4th immediate request is refused


def _principal(name: str, token: str, **limits: str) -> dict[str, str]:
    fields = {"TOKEN": token, "ROLE": "submitter", "ACCOUNTS": "default", **limits}
    return {f"IMSREP_PRINCIPALS__{name.upper()}__{field}": value for field, value in fields.items()}


@pytest.fixture(scope="module")
def server(start_api):
    return start_api(
        **_principal("alice", ALICE, **LIMITED),
        **_principal("bob", BOB, **LIMITED),
        **_principal("carol", CAROL, MAX_UNFINISHED_ITEMS="5"),
    )


def _batch(n: int, **extra: object) -> dict:
    return {"items": [{"image_id": str(uuid.uuid4())} for _ in range(n)], **extra}


def _refused(response: httpx.Response, retry_after: str, *words: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == retry_after
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Too Many Requests" and body["status"] == 429 and body["instance"] == response.url.path
    assert all(word in body["detail"] for word in words), body["detail"]


def test_a_principal_over_its_request_rate_gets_429_and_others_do_not(server) -> None:
    with server.client(ALICE) as alice, server.client(BOB) as bob, server.client() as admin:
        assert [alice.get("/v1/batches").status_code for _ in range(3)] == [200] * 3
        _refused(alice.get("/v1/batches"), "10", "principal alice", "0.1 a second", "bursts of 3")
        _refused(alice.post("/v1/batches", json=_batch(1)), "10", "principal alice")  # every /v1 route
        assert bob.get("/v1/batches").status_code == 200  # a bucket per principal
        assert [admin.get("/v1/batches").status_code for _ in range(10)] == [200] * 10  # API tokens: no limits
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # outside /v1: never limited


def test_a_principal_at_its_unfinished_items_limit_is_refused_until_items_finish(server) -> None:
    store = server.store()
    with server.client(CAROL) as carol:
        first = carol.post("/v1/batches", json=_batch(3))
        assert first.status_code == 202
        _refused(carol.post("/v1/batches", json=_batch(3)), "30", "3 unfinished items", "limit of 5")
        assert carol.post("/v1/replications", json={"image_id": str(uuid.uuid4())}).status_code == 202
        _refused(carol.post("/v1/batches", json=_batch(2)), "30", "4 unfinished items", "limit of 5")
        # A plan stores verdicts, not items: it is not held to the limit.
        assert carol.post("/v1/batches", json=_batch(3, plan=True)).status_code == 202

        done, failed, cancelled = first.json()["item_ids"]
        walk_to(store, done, ItemState.SUCCEEDED)
        walk_to(store, failed, ItemState.FAILED)
        walk_to(store, cancelled, ItemState.CANCELLED)
        second = carol.post("/v1/batches", json=_batch(2))
        assert second.status_code == 202  # 1 unfinished + 2 fits in 5

        # A retry makes an ended batch's items unfinished again: they count once more.
        assert carol.post(f"/v1/batches/{first.json()['batch_id']}/retry").status_code == 202
        _refused(carol.post("/v1/batches", json=_batch(2)), "30", "4 unfinished items")  # 3 without the retried one


def test_limits_come_from_the_environment_and_the_principals_file_and_api_tokens_have_none(
    tmp_path, monkeypatch
) -> None:
    file = tmp_path / "principals.toml"
    file.write_text(
        '[dave]\ntoken = "dave-limits-token-04"\nrole = "submitter"\naccounts = "*"\n'
        "requests_per_second = 2.5\nrequest_burst = 7\nmax_unfinished_items = 900\n"
    )
    monkeypatch.setenv("IMSREP_PRINCIPALS__ERIN__TOKEN", "erin-limits-token-06")
    monkeypatch.setenv("IMSREP_PRINCIPALS__ERIN__MAX_UNFINISHED_ITEMS", "40")
    registry = PrincipalRegistry(load_settings(api_tokens="admin-limits-token-5", principals_file=file))
    dave, erin = registry.authenticate("dave-limits-token-04"), registry.authenticate("erin-limits-token-06")
    assert dave is not None and dave.limits == Limits(2.5, 7, 900)
    assert erin is not None and erin.limits == Limits(50.0, 100, 40)  # the defaults but what it sets
    admin = registry.authenticate("admin-limits-token-5")
    assert admin is not None and admin.limits is None
