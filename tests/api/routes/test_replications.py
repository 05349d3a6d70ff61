"""/v1/replications over real HTTP: one image in, one item's full record out."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.support import walk_to
from worker.domain.followups import Followups, Member, ShareResult, Status, TagsResult
from worker.domain.reasons import ReasonCode, next_step
from worker.domain.states import ItemState


def test_submit_one_is_a_batch_of_one(api, client) -> None:
    image = str(uuid.uuid4())
    response = client.post("/v1/replications", json={"image_id": image, "name": "db copy", "kms_key": "ims/default"})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"batch_id", "item_id"}
    assert response.headers["location"] == f"/v1/replications/{body['item_id']}"
    assert client.get(response.headers["location"]).json()["item_id"] == body["item_id"]
    summary = api.store().batch(body["batch_id"])
    assert summary.total == 1 and summary.counts[ItemState.ACCEPTED] == 1
    item = api.store().get_item(body["item_id"])
    assert (item.image_id, item.name, item.kms_key, item.batch_id) == (
        image,
        "db copy",
        "ims/default",
        body["batch_id"],
    )
    [message] = api.admits_for(body["batch_id"])
    assert message["task"] == "replication.admit"


def test_submit_one_refuses_with_every_problem(api, client) -> None:
    before = api.redis().zcard(f"{api.prefix}:batches")
    response = client.post("/v1/replications", json={"image_id": "x", "name": "a/b", "account": "Upper"})
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["errors"]}
    assert fields == {"image_id", "name", "account"}
    assert {p["index"] for p in response.json()["errors"]} == {None}
    assert response.json()["detail"].endswith("nothing was stored")
    unknown = client.post("/v1/replications", json={"image_id": str(uuid.uuid4()), "account": "other"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "account"
    assert api.redis().zcard(f"{api.prefix}:batches") == before


def test_item_record_shows_outcome_progress_and_history(api, client) -> None:
    item_id = client.post("/v1/replications", json={"image_id": str(uuid.uuid4())}).json()["item_id"]
    store = api.store()
    walk_to(store, item_id, ItemState.VALIDATING)
    walk_to(store, item_id, ItemState.WAITING, target_name="copy_cn-north-4_web")
    walk_to(store, item_id, ItemState.SUBMITTING)
    walk_to(store, item_id, ItemState.REPLICATING, job_id="ff8080814dbd65d7014dbe0d84db0013")
    assert store.update_if(item_id, ItemState.REPLICATING, progress=0.42)

    running = client.get(f"/v1/replications/{item_id}").json()
    assert running["state"] == "replicating" and running["progress_percent"] == 42.0
    assert running["job_id"] == "ff8080814dbd65d7014dbe0d84db0013"
    assert running["target_name"] == "copy_cn-north-4_web" and running["account"] == "default"

    new_image = str(uuid.uuid4())
    walk_to(store, item_id, ItemState.SUCCEEDED, new_image_id=new_image, progress=1.0)
    done = client.get(f"/v1/replications/{item_id}").json()
    assert done["state"] == "succeeded" and done["new_image_id"] == new_image and done["progress_percent"] == 100.0
    assert done["attempt"] == 1 and done["reason"] is None
    states = [t["state"] for t in done["history"]]
    assert states == ["accepted", "validating", "waiting", "submitting", "replicating", "succeeded"]
    times = [datetime.fromisoformat(t["at"].replace("Z", "+00:00")) for t in done["history"]]
    assert times == sorted(times)


def test_item_record_shows_reason_code_and_message(api, client) -> None:
    item_id = client.post("/v1/replications", json={"image_id": str(uuid.uuid4())}).json()["item_id"]
    store = api.store()
    walk_to(store, item_id, ItemState.VALIDATING)
    message = "ISO images cannot be replicated"
    walk_to(store, item_id, ItemState.REJECTED, reason=ReasonCode.ISO_IMAGE, message=message)
    record = client.get(f"/v1/replications/{item_id}").json()
    assert (record["state"], record["reason"], record["message"]) == ("rejected", "ISO_IMAGE", message)
    assert record["history"][-1] == {
        "state": "rejected",
        "at": record["history"][-1]["at"],
        "reason": "ISO_IMAGE",
        "message": message,
    }


def test_unknown_and_malformed_item_ids(client) -> None:
    missing = client.get(f"/v1/replications/{uuid.uuid4().hex}")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    for bad in ("123", "g" * 32, str(uuid.uuid4())):
        response = client.get(f"/v1/replications/{bad}")
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "item_id"


def test_a_copy_whose_sharing_failed_shows_what_was_and_was_not_done(api, client) -> None:
    friend, stranger = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    body = {"image_id": str(uuid.uuid4()), "target_region": "cn-south-1", "share_with": [friend, stranger],
            "tags": {"team": "web"}}  # fmt: skip
    item_id = client.post("/v1/replications", json=body).json()["item_id"]
    followups = Followups(
        started_at=1.0,
        tags=TagsResult(wanted={"team": "web"}, applied={"team": "web"}, status=Status.APPLIED),
        share=ShareResult(wanted=[friend, stranger], job_id="j" * 32, members=[Member(project_id=friend,
                          status="pending")], status=Status.FAILED, reason=ReasonCode.SHARE_PROJECT_INVALID,
                          message="IMG.0108"),
    )  # fmt: skip
    walk_to(api.store(), item_id, ItemState.FINISHING, target_project_id="a" * 32, agency_name="ims_admin_agency")
    walk_to(api.store(), item_id, ItemState.SUCCEEDED, reason=ReasonCode.NOT_SHARED, followups=followups,
            new_image_id="made")  # fmt: skip
    shown = client.get(f"/v1/replications/{item_id}").json()
    assert shown["state"] == "succeeded" and shown["reason"] == "NOT_SHARED" and shown["new_image_id"] == "made"
    assert shown["mode"] == "cross-region" and shown["target_region"] == "cn-south-1"
    assert shown["target_project_id"] == "a" * 32 and shown["agency"] == "ims_admin_agency"
    assert shown["followups"]["tags"] == {"status": "applied", "wanted": {"team": "web"}, "applied": {"team": "web"},
                                          "not_applied": {}, "reason": None, "message": None}  # fmt: skip
    share = shown["followups"]["share"]
    assert share["members"] == [{"project_id": friend, "status": "pending"}] and share["not_shared"] == [stranger]
    assert share["status"] == "failed" and share["reason"] == "SHARE_PROJECT_INVALID"
    assert [t["state"] for t in shown["history"]][-2:] == ["finishing", "succeeded"]


def test_an_items_manifest_line_is_kept_and_shown(api, client) -> None:
    item_id = client.post("/v1/replications", json={"image_id": str(uuid.uuid4()), "line": 12}).json()["item_id"]
    assert api.store().get_item(item_id).line == 12
    assert client.get(f"/v1/replications/{item_id}").json()["line"] == 12
    # A record stored before items had a line (or sent without one) reads as having none.
    api.redis().hdel(f"{api.prefix}:item:{item_id}", "line")
    assert client.get(f"/v1/replications/{item_id}").json()["line"] is None


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        (0, "Input should be greater than or equal to 1"),
        (-4, "Input should be greater than or equal to 1"),
        (10**10, "Input should be less than or equal to 1000000000"),
        ("12", "Input should be a valid integer"),
        (True, "Input should be a valid integer"),
        (1.5, "Input should be a valid integer"),
    ],
)
def test_a_bad_line_is_422_naming_the_field_and_rule(api, client, line, rule) -> None:
    one = client.post("/v1/replications", json={"image_id": str(uuid.uuid4()), "line": line})
    assert one.status_code == 422 and one.json()["errors"] == [{"index": None, "field": "line", "rule": rule}]
    batch = client.post("/v1/batches", json={"items": [{"image_id": str(uuid.uuid4())},
                                                       {"image_id": str(uuid.uuid4()), "line": line}]})  # fmt: skip
    assert batch.status_code == 422 and batch.json()["errors"] == [{"index": 1, "field": "line", "rule": rule}]


def test_an_item_that_ended_short_says_what_to_do_and_others_do_not(api, client) -> None:
    store = api.store()
    rejected, running = (client.post("/v1/replications", json={"image_id": str(uuid.uuid4())}).json()["item_id"]
                         for _ in range(2))  # fmt: skip
    walk_to(store, rejected, ItemState.REJECTED, reason=ReasonCode.KEY_DISABLED, message="key off")
    walk_to(store, running, ItemState.REPLICATING, job_id="j1", job_started_at=1_700_000_000.0, source_name="web")
    shown = client.get(f"/v1/replications/{rejected}").json()
    assert shown["next_step"] == next_step(ReasonCode.KEY_DISABLED)
    under_way = client.get(f"/v1/replications/{running}").json()
    assert under_way["next_step"] is None and under_way["source_name"] == "web"
    assert under_way["job_started_at"] == "2023-11-14T22:13:20Z"
