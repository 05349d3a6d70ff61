"""Plans over real HTTP (no worker here: plans stay ``planning``), and the quota warning at submission."""

from __future__ import annotations

import time
import uuid

from tests.api.conftest import PROJECT_ID, admit_messages


def _items(n: int, **fields) -> list[dict]:
    return [{"image_id": str(uuid.uuid4()), **fields} for _ in range(n)]


def _queued(api) -> list[dict]:
    return admit_messages(api.redis())


def test_a_plan_is_stored_not_run_and_answers_where_to_find_it(api, client) -> None:
    before = api.redis().zcard(f"{api.prefix}:batches")
    response = client.post("/v1/batches", json={"items": _items(3), "plan": True, "label": "dry"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {"plan_id": body["plan_id"], "state": "planning", "accepted": 3, "selecting": False}
    assert response.headers["Location"] == f"/v1/plans/{body['plan_id']}"
    assert api.redis().zcard(f"{api.prefix}:batches") == before  # not a batch: nothing will be copied
    [message] = [m for m in _queued(api) if m["kwargs"].get("plan_id") == body["plan_id"]]
    assert message["task"] == "replication.plan"
    assert message["kwargs"] == {"plan_id": body["plan_id"], "stage": "items", "marker": ""}
    shown = client.get(f"/v1/plans/{body['plan_id']}").json()
    assert (shown["state"], shown["label"], shown["summary"], shown["items"]) == ("planning", "dry", None, [])


def test_a_selector_plan_starts_with_its_first_page(api, client) -> None:
    response = client.post("/v1/batches", json={"selector": {"encrypted": True}, "plan": True})
    body = response.json()
    assert response.status_code == 202 and body["selecting"] is True and body["accepted"] == 0
    [message] = [m for m in _queued(api) if m["kwargs"].get("plan_id") == body["plan_id"]]
    assert message["kwargs"]["stage"] == "page"


def test_a_plan_replays_with_its_key(client) -> None:
    key = {"Idempotency-Key": f"plan-{uuid.uuid4()}"}
    body = {"items": _items(2), "plan": True}
    first = client.post("/v1/batches", json=body, headers=key)
    again = client.post("/v1/batches", json=body, headers=key)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"


def test_plan_input_is_checked_like_a_batch(start_api) -> None:
    small = start_api(IMSREP_MAX_BATCH_ITEMS="10")
    with small.client() as c:
        too_many = c.post("/v1/batches", json={"items": _items(11), "plan": True})
        not_bool = c.post("/v1/batches", json={"items": _items(1), "plan": "yes"})
    assert too_many.status_code == 422
    assert too_many.json()["errors"] == [{"index": None, "field": "items", "rule": "must hold 1 to 10 items (got 11)"}]
    assert not_bool.status_code == 422 and not_bool.json()["errors"][0] == {
        "index": None, "field": "plan", "rule": "must be true or false"}  # fmt: skip
    assert small.redis().keys(f"{small.prefix}:plan:*") == []


def test_unknown_plan_is_404(client) -> None:
    assert client.get(f"/v1/plans/{uuid.uuid4().hex}").status_code == 404


def test_a_batch_over_the_known_quota_says_so_at_submission(api, client) -> None:
    data = api.data()
    data.slots.set_quota(PROJECT_ID, 50, 46, 0, time.time())
    response = client.post("/v1/batches", json={"items": _items(6)})
    assert response.status_code == 202
    body = response.json()
    [note] = body["quota"]
    assert (note["account"], note["items"], note["headroom"], note["over_quota"]) == ("default", 6, 4, 2)
    [warning] = body["warnings"]
    assert warning.startswith("account default: 6 copies asked and 0 already waiting, but its image quota has room")
    assert "2 will wait for quota" in warning
    fits = client.post("/v1/batches", json={"items": _items(4)}).json()
    assert fits["warnings"] == [] and fits["quota"][0]["over_quota"] == 0


def test_a_plan_holds_at_most_10000_items_whatever_a_batch_may(start_api) -> None:
    big = start_api(IMSREP_MAX_BATCH_ITEMS="100000")
    items = [{"image_id": "b6f1a7de-37d4-4f2c-9a0e-3c7e1d2f5a81"}] * 100_000
    with big.client() as c:
        response = c.post("/v1/batches", json={"items": items, "plan": True})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": None, "field": "items", "rule": "must hold 1 to 10000 items (got 100000)"}]  # fmt: skip
    assert big.redis().keys(f"{big.prefix}:plan:*") == []
