"""Every route x role x in-scope / out-of-scope, over HTTP: the documented status for each (docs/teams.md), and a 404,
not a 403, for what is outside a principal's accounts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support import walk_to
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState

from .conftest import PROJECT_ID

OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
# Principals of the account "default" (one submitter submits the batches, another did not), and of "other" only.
ROLES = {
    "reader": ("reader", "default"),
    "submitter": ("submitter", "default"),
    "colleague": ("submitter", "default"),
    "operator": ("operator", "default"),
    "outsider": ("operator", "other"),
    "stranger": ("reader", "other"),
}
ADMIN = "admin"  # IMSREP_API_TOKENS' token: an admin of every account
OUT = ("outsider", "stranger")


def _token(name: str) -> str:
    return f"{name}-token-{'x' * 16}"


@pytest.fixture(scope="module")
def teams(start_api):
    env = {
        "IMSREP_ACCOUNTS__OTHER__PROJECT_ID": OTHER_PROJECT,
        "IMSREP_ACCOUNTS__OTHER__ACCESS_KEY": "AKOTHEREXAMPLE",
        "IMSREP_ACCOUNTS__OTHER__SECRET_KEY": "SKOTHEREXAMPLE",
    }
    for name, (role, account) in ROLES.items():
        env |= {
            f"IMSREP_PRINCIPALS__{name.upper()}__TOKEN": _token(name),
            f"IMSREP_PRINCIPALS__{name.upper()}__ROLE": role,
            f"IMSREP_PRINCIPALS__{name.upper()}__ACCOUNTS": account,
        }
    return start_api(**env)


@dataclass
class World:
    """A fresh batch of one item in the account ``default``, submitted by the submitter; a plan of it."""

    batch_id: str
    item_id: str


def _call(teams, who: str, method: str, path: str, **kwargs):
    token = teams.token if who == ADMIN else _token(who)
    with teams.client(token) as c:
        return c.request(method, path, **kwargs)


def _world(teams, *, finished: bool = False) -> World:
    answer = _call(teams, "submitter", "POST", "/v1/batches", json={"items": [{"image_id": str(uuid.uuid4())}]})
    assert answer.status_code == 202, answer.text
    batch_id, [item_id] = answer.json()["batch_id"], answer.json()["item_ids"]
    if finished:
        walk_to(teams.store(), item_id, ItemState.REJECTED, reason=ReasonCode.ISO_IMAGE)
    return World(batch_id, item_id)


def _item(account: str = "default") -> dict:
    return {"items": [{"image_id": str(uuid.uuid4()), "account": account}]}


# Each route: how to call it on a fresh world, and the status each principal in scope gets (the out-of-scope
# principals' answer is the last element: 404 for a resource, 403 naming the account for a submission).
Route = tuple[str, Callable[[World], tuple[str, str, dict]], dict[str, int], int]
ROUTES: list[Route] = [
    ("read batch", lambda w: ("GET", f"/v1/batches/{w.batch_id}", {}), {}, 404),
    ("read items", lambda w: ("GET", f"/v1/batches/{w.batch_id}/items", {}), {}, 404),
    ("read item", lambda w: ("GET", f"/v1/replications/{w.item_id}", {}), {}, 404),
    (
        "cancel",
        lambda w: ("POST", f"/v1/batches/{w.batch_id}/cancel", {}),
        {"reader": 403, "colleague": 403},
        404,
    ),
    (
        "retry",
        lambda w: ("POST", f"/v1/batches/{w.batch_id}/retry", {}),
        {"reader": 403, "colleague": 403, "submitter": 202, "operator": 202, ADMIN: 202},
        404,
    ),
    (
        "delete",
        lambda w: ("DELETE", f"/v1/batches/{w.batch_id}", {}),
        {"reader": 403, "colleague": 403, "submitter": 403, "operator": 204, ADMIN: 204},
        404,
    ),
    (
        "submit batch",
        lambda w: ("POST", "/v1/batches", {"json": _item()}),
        {"reader": 403, "submitter": 202, "colleague": 202, "operator": 202, ADMIN: 202},
        403,
    ),
    (
        "submit plan",
        lambda w: ("POST", "/v1/batches", {"json": {**_item(), "plan": True}}),
        {"reader": 403, "submitter": 202, "colleague": 202, "operator": 202, ADMIN: 202},
        403,
    ),
    (
        "submit one",
        lambda w: ("POST", "/v1/replications", {"json": _item()["items"][0]}),
        {"reader": 403, "submitter": 202, "colleague": 202, "operator": 202, ADMIN: 202},
        403,
    ),
    (
        "check account",
        lambda w: ("POST", "/v1/accounts/check", {"params": {"account": "default"}}),
        {"reader": 403, "submitter": 403, "colleague": 403, "operator": 202, ADMIN: 202},
        404,
    ),
]
PRINCIPALS = [*ROLES, ADMIN]


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
def test_every_route_answers_each_role_and_scope_as_documented(teams, route: Route) -> None:
    name, request, in_scope, out_of_scope = route
    got, expected = {}, {}
    for who in PRINCIPALS:
        world = _world(teams, finished=name in ("delete", "retry"))
        method, path, kwargs = request(world)
        answer = _call(teams, who, method, path, **kwargs)
        got[who] = answer.status_code
        expected[who] = out_of_scope if who in OUT else in_scope.get(who, 200)
        if answer.status_code == 403:
            assert answer.headers["content-type"] == "application/problem+json"
            reasons = ("account default: not among principal", f"principal {who} is a", "only its own batches")
            assert any(reason in answer.json()["detail"] for reason in reasons), answer.text
        if answer.status_code == 404:
            assert "not found" in answer.json()["detail"] or "not configured" in answer.json()["detail"]
    assert got == expected


def test_a_batch_out_of_scope_answers_exactly_as_a_missing_one(teams) -> None:
    world = _world(teams)
    hidden = _call(teams, "stranger", "GET", f"/v1/batches/{world.batch_id}")
    missing_id = uuid.uuid4().hex
    missing = _call(teams, "stranger", "GET", f"/v1/batches/{missing_id}")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(world.batch_id, missing_id) == missing.json()["detail"]


def test_lists_show_only_what_is_in_scope(teams) -> None:
    world = _world(teams)
    theirs = _call(teams, "outsider", "POST", "/v1/batches", json=_item("other")).json()["batch_id"]

    def batches(who: str) -> set[str]:
        return {b["batch_id"] for b in _call(teams, who, "GET", "/v1/batches", params={"limit": 500}).json()["batches"]}

    def accounts(who: str) -> set[str]:
        return {a["name"] for a in _call(teams, who, "GET", "/v1/accounts").json()["accounts"]}

    assert world.batch_id in batches("reader") and theirs not in batches("reader")
    assert theirs in batches("stranger") and world.batch_id not in batches("stranger")
    assert {world.batch_id, theirs} <= batches(ADMIN)
    assert accounts("reader") == {"default"} and accounts("stranger") == {"other"}
    assert accounts(ADMIN) == {"default", "other"}
    assert PROJECT_ID not in _call(teams, "stranger", "GET", "/v1/accounts").text


def test_a_batch_names_who_submitted_it_and_a_cancel_says_who_cancelled(teams) -> None:
    world = _world(teams)
    status = _call(teams, "reader", "GET", f"/v1/batches/{world.batch_id}").json()
    assert status["submitted_by"] == "submitter" and status["accounts"] == ["default"]
    assert _call(teams, "operator", "POST", f"/v1/batches/{world.batch_id}/cancel").status_code == 200
    item = _call(teams, "reader", "GET", f"/v1/replications/{world.item_id}").json()
    assert item["message"] == "cancelled by operator"


def test_an_item_of_two_accounts_needs_both_in_scope(teams) -> None:
    body = {"items": [{"image_id": str(uuid.uuid4()), "account": a} for a in ("default", "other")]}
    refused = _call(teams, "operator", "POST", "/v1/batches", json=body)
    assert refused.status_code == 403 and "account other: not among principal operator's" in refused.text
    assert _call(teams, ADMIN, "POST", "/v1/batches", json=body).status_code == 202


def test_a_distribution_acts_in_its_receivers_accounts_and_shows_its_receivers(teams) -> None:
    receiver = {"account": "other", "key": "ims/other", "tags": {"team": "other"}}
    body = {"items": [{"image_id": str(uuid.uuid4()), "distribute": [receiver]}]}
    refused = _call(teams, "operator", "POST", "/v1/batches", json=body)
    assert refused.status_code == 403 and "account other: not among principal operator's" in refused.text
    accepted = _call(teams, ADMIN, "POST", "/v1/batches", json=body).json()
    assert _call(teams, ADMIN, "GET", f"/v1/batches/{accepted['batch_id']}").json()["accounts"] == ["default", "other"]
    item = _call(teams, ADMIN, "GET", f"/v1/replications/{accepted['item_ids'][0]}").json()
    assert item["distribute"] == [{**receiver, "region": None}]
    # Seen only by principals of every account it acts in, as any record (docs/teams.md).
    assert _call(teams, "stranger", "GET", f"/v1/replications/{accepted['item_ids'][0]}").status_code == 404
    # A selector's template distributing its copies acts in the receivers' accounts too.
    selecting = {"selector": {"name_prefix": "golden-"}, "template": {"distribute": [receiver]}}
    refused = _call(teams, "operator", "POST", "/v1/batches", json=selecting)
    assert refused.status_code == 403 and "account other: not among principal operator's" in refused.text
    accepted = _call(teams, ADMIN, "POST", "/v1/batches", json=selecting).json()
    assert _call(teams, ADMIN, "GET", f"/v1/batches/{accepted['batch_id']}").json()["accounts"] == ["default", "other"]
