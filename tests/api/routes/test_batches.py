"""/v1/batches over real HTTP: submission, refusals, status, pages, cancel and retry."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from tests.support import walk_to
from worker.domain.reasons import ReasonCode
from worker.domain.states import ItemState


def _items(n: int, **fields) -> list[dict]:
    return [{"image_id": str(uuid.uuid4()), **fields} for _ in range(n)]


def _stored_batches(api) -> int:
    return api.redis().zcard(f"{api.prefix}:batches")


def test_submit_answers_202_stores_items_and_sends_one_admit(api, client) -> None:
    items = _items(3)
    items[1]["name"] = "web copy"
    response = client.post("/v1/batches", json={"items": items, "defaults": {"kms_key": "ims/default"}})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 3 and len(body["item_ids"]) == 3
    assert response.headers["location"] == f"/v1/batches/{body['batch_id']}"
    store = api.store()
    summary = store.batch(body["batch_id"])
    assert summary.total == 3 and summary.counts[ItemState.ACCEPTED] == 3
    stored = [store.get_item(i) for i in body["item_ids"]]
    assert [i.image_id for i in stored] == [i["image_id"] for i in items]
    assert stored[1].name == "web copy" and {i.kms_key for i in stored} == {"ims/default"}
    assert {i.state for i in stored} == {ItemState.ACCEPTED} and {i.account for i in stored} == {"default"}
    [message] = api.admits_for(body["batch_id"])
    assert message["task"] == "replication.admit"
    assert message["envelope"]["headers"]["task"] == "replication.admit"
    assert message["args"] == [] and message["kwargs"] == {"batch_id": body["batch_id"]}


def test_bad_items_refuse_the_whole_batch_listing_each(api, client) -> None:
    before = _stored_batches(api)
    items = _items(10)
    items[3]["name"] = "trailing "
    items[7]["image_id"] = "nope"
    items[7]["enterprise_project_id"] = "abc"
    response = client.post("/v1/batches", json={"items": items})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "2 of 10 items are invalid; nothing was stored"
    assert (body["type"], body["title"], body["status"], body["instance"]) == (
        "about:blank", "Unprocessable Content" if sys.version_info >= (3, 13) else "Unprocessable Entity", 422,
        "/v1/batches",
    )  # fmt: skip
    assert sorted(body["errors"], key=lambda p: (p["index"], p["field"])) == [
        {"index": 3, "field": "name", "rule": "must not start or end with a space"},
        {"index": 7, "field": "enterprise_project_id", "rule": 'must be "0" or a UUID'},
        {"index": 7, "field": "image_id", "rule": "must be an image ID in UUID form"},
    ]
    assert _stored_batches(api) == before


def test_unknown_account_is_422(api, client) -> None:
    response = client.post("/v1/batches", json={"items": _items(1) + _items(1, account="elsewhere")})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 1, "field": "account", "rule": "must be one of the configured accounts: default"}
    ]


def test_an_item_breaking_a_guardrail_is_422_naming_the_account_and_nothing_is_stored(api, client) -> None:
    # The test API's account shares with two projects and copies to cn-south-1 only (tests/api/conftest.py).
    before = _stored_batches(api)
    outsider = "1" * 32
    items = _items(1) + _items(1, share_with=[outsider]) + _items(1, target_region="cn-east-3")
    response = client.post("/v1/batches", json={"items": items})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 1, "field": "share_with", "rule": f"project {outsider} is not in account default's share_projects "
         "(sharing is refused when the list is empty)"},
        {"index": 2, "field": "target_region", "rule": "region cn-east-3 is not in account default's copy_regions "
         "(cn-south-1)"},
    ]  # fmt: skip
    assert response.json()["detail"] == "2 of 3 items are invalid; nothing was stored"
    assert _stored_batches(api) == before


def test_too_many_items_is_422(start_api) -> None:
    small = start_api(IMSREP_MAX_BATCH_ITEMS="3")
    with small.client() as c:
        response = c.post("/v1/batches", json={"items": _items(4)})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"index": None, "field": "items", "rule": "must hold 1 to 3 items (got 4)"}]
    assert "items: must hold 1 to 3 items (got 4)" in response.json()["detail"]
    assert _stored_batches(small) == 0


@pytest.mark.parametrize(
    ("content", "field", "rule_start"),
    [
        (b'{"items": [', "body", "must be valid JSON"),
        (b"\xff\xfe{}", "body", "must be valid JSON"),
        (b"", "body", "is required"),
        (b"[" * 50_000 + b"]" * 50_000, "body", "must be valid JSON (nested too deeply"),
        # Parsed by every Python, refused by the API's own rule (Python 3.14 parses the one above too).
        (b'{"items": ' + b"[" * 40 + b"]" * 40 + b"}", "body", "must be valid JSON (nested too deeply: at most 32"),
        (b'{"items": [{"image_id": "x", "description": "\\ud800"}]}', "body", "must be valid Unicode"),
        (b'"items"', "body", "must be a JSON object"),
        (b'{"items": "all of them"}', "items", "Input should be a valid list"),
        (b'{"items": [], "urgency": 1}', "urgency", "is not a known field"),
        (b'{"items": [], "priority": 1}', "priority", "Input should be 'high', 'normal' or 'low'"),
        (b'{"items": [{"image_id": 42}]}', "image_id", "Input should be a valid string"),
    ],
)
def test_malformed_bodies_are_4xx_naming_field_and_rule(api, client, content, field, rule_start) -> None:
    response = client.post("/v1/batches", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    problems = response.json()["errors"]
    assert any(p["field"] == field and p["rule"].startswith(rule_start) for p in problems), problems
    assert field in response.json()["detail"] or "items are invalid" in response.json()["detail"]


def test_batch_status_counts_every_state(api, client) -> None:
    body = client.post("/v1/batches", json={"items": _items(2)}).json()
    walk_to(api.store(), body["item_ids"][0], ItemState.VALIDATING)
    status = client.get(f"/v1/batches/{body['batch_id']}").json()
    assert status["batch_id"] == body["batch_id"] and status["total"] == 2 and status["done"] is False
    assert status["counts"] == {s.value: 0 for s in ItemState} | {"accepted": 1, "validating": 1}
    assert status["created_at"].endswith("Z") or status["created_at"].endswith("+00:00")


def test_items_are_paged_and_filtered_by_state(api, client) -> None:
    body = client.post("/v1/batches", json={"items": _items(7)}).json()
    ids, batch_id = body["item_ids"], body["batch_id"]
    for item_id in ids[::2]:
        walk_to(api.store(), item_id, ItemState.CANCELLED, reason=ReasonCode.CANCELLED)
    seen, cursor = [], 0
    while cursor is not None:
        page = client.get(f"/v1/batches/{batch_id}/items", params={"limit": 3, "cursor": cursor}).json()
        assert len(page["items"]) <= 3
        seen += [i["item_id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert seen == ids
    cancelled = client.get(f"/v1/batches/{batch_id}/items", params={"state": "cancelled"}).json()
    assert [i["item_id"] for i in cancelled["items"]] == ids[::2] and cancelled["next_cursor"] is None
    assert {i["reason"] for i in cancelled["items"]} == {"CANCELLED"}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/batches/not-an-id", 422),
        ("/v1/batches/" + "A" * 32, 422),
        ("/v1/batches/" + "0" * 33, 422),
        ("/v1/batches/" + uuid.uuid4().hex, 404),
        ("/v1/batches/" + uuid.uuid4().hex + "/items", 404),
        ("/v1/batches/{batch}/items?limit=0", 422),
        ("/v1/batches/{batch}/items?limit=1001", 422),
        ("/v1/batches/{batch}/items?cursor=-1", 422),
        ("/v1/batches/{batch}/items?cursor=99999999999999999999999", 422),
        ("/v1/batches/{batch}/items?state=lost", 422),
        ("/v1/batches/{batch}/items?limit=ten", 422),
    ],
)
def test_bad_ids_and_parameters_are_4xx_with_a_message(api, client, path, status) -> None:
    batch = client.post("/v1/batches", json={"items": _items(1)}).json()["batch_id"]
    response = client.get(path.format(batch=batch))
    assert response.status_code == status
    assert response.json()["detail"]


def test_cancel_only_touches_items_not_yet_at_ims(api, client) -> None:
    body = client.post("/v1/batches", json={"items": _items(5)}).json()
    ids, store = body["item_ids"], api.store()
    for state in (ItemState.VALIDATING, ItemState.WAITING, ItemState.SUBMITTING):
        walk_to(store, ids[3], state)
    for state in (ItemState.VALIDATING, ItemState.REJECTED):
        walk_to(store, ids[4], state, reason=ReasonCode.IMAGE_NOT_FOUND)
    walk_to(store, ids[1], ItemState.VALIDATING)
    response = client.post(f"/v1/batches/{body['batch_id']}/cancel")
    assert response.status_code == 200
    outcome = response.json()
    assert (outcome["cancelled"], outcome["already_terminal"], outcome["not_cancellable_running"]) == (3, 1, 1)
    assert outcome["message"].startswith("3 cancelled; 1 had already ended; 1 not cancelled: a running IMS copy job")
    states = [store.get_item(i).state for i in ids]
    assert states == [ItemState.CANCELLED] * 3 + [ItemState.SUBMITTING, ItemState.REJECTED]
    counts = client.get(f"/v1/batches/{body['batch_id']}").json()["counts"]
    assert counts["cancelled"] == 3 and counts["accepted"] == 0


def test_retry_puts_failed_items_back_as_attempt_two(api, client) -> None:
    body = client.post("/v1/batches", json={"items": _items(2)}).json()
    failed, store = body["item_ids"][0], api.store()
    for state in (ItemState.VALIDATING, ItemState.WAITING, ItemState.SUBMITTING):
        walk_to(store, failed, state)
    walk_to(store, failed, ItemState.REPLICATING, job_id="job-9", progress=0.3)
    walk_to(store, failed, ItemState.FAILED, reason=ReasonCode.IMS_JOB_FAILED, message="FAIL")
    response = client.post(f"/v1/batches/{body['batch_id']}/retry")
    assert response.status_code == 202 and response.json() == {"retried": 1, "resumed": 0}
    assert response.headers["location"] == f"/v1/batches/{body['batch_id']}"
    item = client.get(f"/v1/replications/{failed}").json()
    assert item["state"] == "accepted" and item["attempt"] == 2
    assert item["reason"] is None and item["message"] is None and item["job_id"] is None
    assert item["progress_percent"] is None
    assert [t["state"] for t in item["history"]][-2:] == ["failed", "accepted"]
    assert len(api.admits_for(body["batch_id"])) == 2
    assert client.post(f"/v1/batches/{body['batch_id']}/retry").json() == {"retried": 0, "resumed": 0}


def test_cancelled_items_are_resumed_only_when_asked(api, client) -> None:
    body = client.post("/v1/batches", json={"items": _items(3)}).json()
    path, (cancelled, _, failed), store = f"/v1/batches/{body['batch_id']}", body["item_ids"], api.store()
    walk_to(store, failed, ItemState.VALIDATING)
    walk_to(store, failed, ItemState.FAILED, reason=ReasonCode.IMAGE_NOT_FOUND)
    assert client.post(f"{path}/cancel").json()["cancelled"] == 2
    assert client.post(f"{path}/retry").json() == {"retried": 1, "resumed": 0}
    assert store.get_item(cancelled).state is ItemState.CANCELLED
    response = client.post(f"{path}/retry", params={"cancelled": "true"})
    assert response.status_code == 202 and response.json() == {"retried": 0, "resumed": 2}
    item = client.get(f"/v1/replications/{cancelled}").json()
    assert (item["state"], item["attempt"], item["reason"]) == ("accepted", 2, None)
    assert [t["state"] for t in item["history"]][-2:] == ["cancelled", "accepted"]
    assert client.get(path).json()["counts"]["accepted"] == 3
    assert client.post(f"{path}/retry", params={"cancelled": "maybe"}).status_code == 422


def test_a_batch_shows_when_it_finished_and_not_once_a_retry_runs_it_again(api, client) -> None:
    body = client.post("/v1/batches", json={"items": _items(2)}).json()
    path, (failed, other), store = f"/v1/batches/{body['batch_id']}", body["item_ids"], api.store()
    walk_to(store, failed, ItemState.VALIDATING)
    walk_to(store, failed, ItemState.FAILED, reason=ReasonCode.IMAGE_NOT_FOUND)
    assert client.get(path).json()["finished_at"] is None  # one item is still accepted
    assert client.post(f"{path}/cancel").json()["cancelled"] == 1
    shown = client.get(path).json()
    ended = store.get_item(other).updated_at  # the last item to end
    assert shown["state"] == "finished" and shown["finished_at"] is not None
    assert datetime.fromisoformat(shown["finished_at"]) == datetime.fromtimestamp(ended, timezone.utc)
    listed = client.get("/v1/batches", params={"state": "finished"}).json()["batches"]
    assert next(b for b in listed if b["batch_id"] == body["batch_id"])["finished_at"] == shown["finished_at"]
    assert client.post(f"{path}/retry").json() == {"retried": 1, "resumed": 0}
    shown = client.get(path).json()
    assert shown["state"] == "running" and shown["finished_at"] is None

    selector = client.post("/v1/batches", json={"selector": {"fast_create": False}}).json()["batch_id"]
    assert client.post(f"/v1/batches/{selector}/cancel").status_code == 200  # stops the selector: nothing left
    shown = client.get(f"/v1/batches/{selector}").json()
    assert shown["state"] == "finished" and shown["total"] == 0 and shown["finished_at"] is not None


def test_cancel_and_retry_of_unknown_batches_are_404(client) -> None:
    for action in ("cancel", "retry"):
        response = client.post(f"/v1/batches/{uuid.uuid4().hex}/{action}")
        assert response.status_code == 404 and "not found" in response.json()["detail"]


def test_wrong_methods_and_paths_are_4xx(api, client) -> None:
    assert client.delete("/v1/batches").status_code == 405
    assert client.get("/v1/nothing-here").status_code == 404
    assert httpx.put(api.url + "/healthz").status_code == 405


def _finish(api, batch_id: str, state: ItemState = ItemState.SUCCEEDED) -> None:
    store = api.store()
    for item_id in store.batch_item_ids(batch_id):
        walk_to(store, item_id, state)


def test_batches_are_listed_newest_first_in_pages_with_label_and_state_filters(api, client) -> None:
    label = f"campaign-{uuid.uuid4().hex[:8]}"
    made = [client.post("/v1/batches", json={"items": _items(1), "label": label}).json()["batch_id"] for _ in range(5)]
    client.post("/v1/batches", json={"items": _items(1), "label": "elsewhere"})
    _finish(api, made[1])
    pages, cursor = [], None
    while True:
        params = {"label": label, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/batches", params=params).json()
        pages.append([b["batch_id"] for b in body["batches"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [b for page in pages for b in page] == made[::-1] and len(pages[0]) == 2
    finished = client.get("/v1/batches", params={"label": label, "state": "finished"}).json()["batches"]
    shown = [(b["batch_id"], b["state"], b["label"], b["done"]) for b in finished]
    assert shown == [(made[1], "finished", label, True)]
    running = client.get("/v1/batches", params={"label": label, "state": "running"}).json()["batches"]
    assert len(running) == 4 and {b["state"] for b in running} == {"running"}
    everything = client.get("/v1/batches", params={"limit": 500}).json()["batches"]
    assert [b["created_at"] for b in everything] == sorted((b["created_at"] for b in everything), reverse=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "paused"}, "state"),
        ({"label": "no spaces"}, "label"),
        ({"limit": 0}, "limit"),
        ({"cursor": "x"}, "cursor"),
        ({"stat": "running"}, "stat"),
        ({"": "x"}, "(empty name)"),
    ],  # fmt: skip
)
def test_bad_list_parameters_are_422(client, params: dict, field: str) -> None:
    response = client.get("/v1/batches", params=params)
    assert response.status_code == 422 and [p["field"] for p in response.json()["errors"]] == [field]


def test_an_unknown_query_parameter_names_the_known_ones(client) -> None:
    response = client.get("/v1/batches", params={"stat": "running"})
    assert response.status_code == 422
    assert response.json()["detail"] == "stat: is not a query parameter here (known: cursor, label, limit, state)"


def test_an_unknown_query_parameter_is_401_before_422_without_a_token(client) -> None:
    response = client.get("/v1/batches", params={"stat": "running"}, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_delete_removes_a_finished_batch_and_refuses_a_running_one(api, client) -> None:
    running = client.post("/v1/batches", json={"items": _items(2)}).json()
    refused = client.delete(f"/v1/batches/{running['batch_id']}")
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"batch {running['batch_id']} is not finished (2 accepted)")
    assert client.get(f"/v1/batches/{running['batch_id']}").status_code == 200

    _finish(api, running["batch_id"], ItemState.CANCELLED)
    assert client.delete(f"/v1/batches/{running['batch_id']}").status_code == 204
    assert client.get(f"/v1/batches/{running['batch_id']}").status_code == 404
    assert client.get(f"/v1/replications/{running['item_ids'][0]}").status_code == 404
    assert client.delete(f"/v1/batches/{running['batch_id']}").status_code == 404


def test_a_label_is_shown_and_a_bad_one_refused(client) -> None:
    accepted = client.post("/v1/batches", json={"items": _items(1), "label": "rekey-2026"}).json()
    assert client.get(f"/v1/batches/{accepted['batch_id']}").json()["label"] == "rekey-2026"
    bad = client.post("/v1/batches", json={"items": _items(1), "label": "no spaces"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "label"


def test_a_selector_batch_is_stored_and_sent_to_be_expanded(api, client) -> None:
    own = _items(1)
    body = {"items": own, "selector": {"encrypted": True}, "template": {"decrypt": True, "name": "{name}-plain"}}
    response = client.post("/v1/batches", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["selecting"] is True and accepted["accepted"] == 1
    messages = {m["task"]: m["kwargs"] for m in api.admits_for(accepted["batch_id"])}
    assert messages == {
        "replication.admit": {"batch_id": accepted["batch_id"]},
        "replication.expand": {"batch_id": accepted["batch_id"]},
    }
    status = client.get(f"/v1/batches/{accepted['batch_id']}").json()
    assert status["selection"] == {"state": "expanding", "listed": 0, "matched": 0, "created": 0, "message": None}
    assert status["done"] is False and status["state"] == "running"

    cancelled = client.post(f"/v1/batches/{accepted['batch_id']}/cancel").json()
    assert cancelled["cancelled"] == 1
    status = client.get(f"/v1/batches/{accepted['batch_id']}").json()
    assert status["selection"]["state"] == "cancelled" and status["done"] is True


def test_a_selector_alone_needs_no_items_and_sends_no_admit(api, client) -> None:
    response = client.post("/v1/batches", json={"selector": {"fast_create": False}})
    assert response.status_code == 202 and response.json()["accepted"] == 0
    assert [m["task"] for m in api.admits_for(response.json()["batch_id"])] == ["replication.expand"]


def test_an_impossible_template_is_refused_and_nothing_stored(api, client) -> None:
    before = _stored_batches(api)
    response = client.post("/v1/batches", json={"selector": {}, "template": {"name": "{name}" + "-x" * 70}})
    assert response.status_code == 422
    [problem] = response.json()["errors"]
    assert problem["field"] == "template.name" and "over 128 characters" in problem["rule"]
    assert _stored_batches(api) == before


def test_items_come_with_their_history_only_when_asked(api, client) -> None:
    body = client.post("/v1/batches", json={"items": _items(3)}).json()
    batch_id, ids = body["batch_id"], body["item_ids"]
    walk_to(api.store(), ids[1], ItemState.REJECTED, reason=ReasonCode.ISO_IMAGE, message="an ISO")
    plain = client.get(f"/v1/batches/{batch_id}/items").json()["items"]
    assert [i["history"] for i in plain] == [None, None, None]
    seen, cursor = [], 0
    while cursor is not None:
        page = client.get(f"/v1/batches/{batch_id}/items", params={"history": "true", "limit": 2, "cursor": cursor})
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
    assert [[t["state"] for t in i["history"]] for i in seen] == [
        ["accepted"],
        ["accepted", "validating", "rejected"],
        ["accepted"],
    ]
    assert seen[1]["history"][-1]["reason"] == "ISO_IMAGE" and seen[1]["history"][-1]["message"] == "an ISO"
    bad = client.get(f"/v1/batches/{batch_id}/items", params={"history": "maybe"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "history"
