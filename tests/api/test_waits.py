"""A wait as the API shows it: ``blocked_by`` with its hint, and no drain forecast while nothing moves the line."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from api.accounts import AccountView
from api.schemas import AccountOut, LineOut
from tests.support import pool_status, queue_items
from worker.data.accounts import Health
from worker.domain.pools import Pool
from worker.domain.waits import WAITS, BlockedBy

POOL = Pool(name="default", account="default", limit=5, project="p" * 32)


def _account(mean: float | None = 60.0, **status: object) -> AccountOut:
    return AccountOut.of(AccountView("default", "in-region", "cn-north-4", "p" * 32, pool_status(POOL, **status), mean))


def test_a_line_of_busy_slots_is_forecast() -> None:
    shown = _account(queued=10)
    assert shown.blocked_by is BlockedBy.SLOTS and "nothing to do" in shown.blocked_hint
    assert shown.drain_seconds == 120.0 and shown.drain_unknown is None  # 10 copies of 60 s on 5 slots


@pytest.mark.parametrize(
    "status",
    [
        {"headroom": 0},
        {"health": Health(open=True, failures=5, probe_at=1.0, outage_seconds=3.0)},
        {"in_use": 2, "effective": 2},
    ],
    ids=["quota", "outage", "ims_full"],
)
def test_a_blocked_line_has_a_hint_and_no_forecast(status: dict) -> None:
    shown = _account(**status)
    assert shown.blocked_by is not BlockedBy.SLOTS
    assert shown.drain_seconds is None and shown.drain_unknown == "blocked"
    assert shown.blocked_hint == pool_status(POOL, **status).hint


def test_no_forecast_before_any_copy_has_finished_says_so() -> None:
    shown = _account(mean=None)
    assert shown.drain_seconds is None and shown.drain_unknown == "no_history"


def test_an_empty_line_is_blocked_by_nothing() -> None:
    shown = _account(queued=0, headroom=0)
    assert shown.blocked_by is None and shown.blocked_hint is None
    assert shown.drain_seconds == 0.0 and shown.drain_unknown is None


def test_a_batchs_line_carries_the_next_step_in_a_few_words() -> None:
    line = LineOut.of(pool_status(Pool("default:cross-region", "default", 5, None), headroom=None), 4)
    assert (line.account, line.mode, line.items, line.blocked_by) == ("default", "cross-region", 4, BlockedBy.SLOTS)
    assert line.next_step == WAITS[BlockedBy.SLOTS].next_step


def test_the_openapi_document_explains_each_field(api) -> None:
    schemas = httpx.get(f"{api.url}/openapi.json").json()["components"]["schemas"]
    for model in ("ReplicationOut", "AccountOut", "LineOut"):
        fields = schemas[model]["properties"]
        assert "quota (the project's image quota has no room)" in str(fields["blocked_by"]), model
        assert "next step" in fields["blocked_hint"]["description"], model
    assert "blocked (the line waits on an outage" in schemas["AccountOut"]["properties"]["drain_unknown"]["description"]
    assert "lines" in schemas["BatchStatus"]["properties"]


def test_a_pool_without_quota_headroom_says_blocked_with_the_next_step_everywhere(api, client) -> None:
    images = [str(uuid.uuid4()) for _ in range(3)]
    batch = client.post("/v1/batches", json={"items": [{"image_id": i} for i in images]}).json()
    data = api.data()
    # A copy took a minute, so a forecast could be made (recorded before the API's first look: it keeps a look 1 s).
    data.accounts.record_duration("default", 1, 60.0)
    local = _in_region(client)
    pool = Pool("default", "default", local["slots"]["limit"], local["project_id"])
    queue_items(data, batch["item_ids"], pool)
    data.slots.set_quota(pool.project, 50, 50, 0, time.time())

    local = _in_region(client)
    assert (local["waiting"], local["blocked_by"]) == (3, "quota")
    assert local["blocked_hint"] == pool_status(pool, headroom=0).hint and pool.project in local["blocked_hint"]
    assert local["drain_seconds"] is None and local["drain_unknown"] == "blocked"  # not "drains in 36 s"
    shown = client.get(f"/v1/batches/{batch['batch_id']}").json()
    assert shown["lines"] == [
        {
            "account": "default",
            "mode": "in-region",
            "items": 3,
            "blocked_by": "quota",
            "next_step": "delete images or raise the image quota",
            "blocked_hint": local["blocked_hint"],
        }
    ]
    items = client.get(f"/v1/batches/{batch['batch_id']}/items").json()["items"]
    assert {(i["blocked_by"], i["blocked_hint"]) for i in items} == {("quota", local["blocked_hint"])}
    one = client.get(f"/v1/replications/{batch['item_ids'][0]}").json()
    assert (one["blocked_by"], one["blocked_hint"]) == ("quota", local["blocked_hint"])

    data.slots.set_quota(pool.project, 100, 50, 0, time.time())  # raised: the line moves as copies end
    local = _in_region(client)
    assert local["blocked_by"] == "slots" and local["drain_seconds"] == 36.0 and local["drain_unknown"] is None
    assert client.get(f"/v1/batches/{batch['batch_id']}").json()["lines"][0]["blocked_by"] == "slots"
    assert client.get("/v1/batches").json()["batches"][0]["lines"] is None  # lists leave it out


def test_a_batch_with_nothing_in_line_has_no_lines(client) -> None:
    batch = client.post("/v1/batches", json={"items": [{"image_id": str(uuid.uuid4())}]}).json()
    shown = client.get(f"/v1/batches/{batch['batch_id']}").json()
    assert shown["counts"]["accepted"] == 1 and shown["lines"] == []
    item = client.get(f"/v1/replications/{batch['item_ids'][0]}").json()
    assert item["blocked_by"] is None and item["blocked_hint"] is None


def _in_region(client: httpx.Client) -> dict:
    return next(a for a in client.get("/v1/accounts").json()["accounts"] if a["mode"] == "in-region")
