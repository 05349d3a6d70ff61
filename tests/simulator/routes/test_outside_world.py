"""What the real cloud does to a client besides answering it: copies started elsewhere that hold IMS's slots,
and timed outages (5xx, hangs, refused connections) that end by themselves."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

NORTH = "cn-north-4"
SOUTH = "cn-south-1"


def code_of(response: Any) -> str:
    return response.json()["error"]["code"]


def test_external_copies_hold_slots_as_ordinary_jobs(app_sim: Callable[..., Any]) -> None:
    server = app_sim(regions=True, copy_seconds=60)
    client = server.client()
    held = server.control("external_jobs", {"count": 2, "seconds": 30})
    assert held.status_code == 200, held.text
    jobs = held.json()["jobs"]
    assert held.json()["project_id"] == server.project and len(jobs) == 2
    assert all(j["external"] and j["job_type"] == "imsCopyImageInRegionJob" and j["slot"] == "in_region" for j in jobs)
    # A client polling such a job sees an ordinary job.
    assert client.job(jobs[0]["job_id"])["status"] in ("INIT", "RUNNING")
    for n in range(3):
        client.copy_named("debian-12-base", f"ours {n}")
    assert code_of(client.copy(client.image_named("debian-12-base")["id"], {"name": "fourth"})) == "IMG.0060"
    assert server.control("external_jobs", {"count": 1, "seconds": 5}).status_code == 409
    server.clock.advance(30)
    assert client.job(jobs[0]["job_id"])["status"] == "SUCCESS"
    assert client.copy(client.image_named("debian-12-base")["id"], {"name": "fourth"}).status_code == 200
    listed = server.introspect("jobs")["jobs"]
    assert [j["external"] for j in listed] == [True, True, False, False, False, False]
    assert server.introspect("projects")["projects"][0]["quota_used"] == 14  # only our four copies count


def test_external_cross_region_copies_and_bad_requests(app_sim: Callable[..., Any]) -> None:
    server = app_sim(regions=True, copy_seconds=60)
    south_project = server.project_of(SOUTH)
    held = server.control("external_jobs", {"region": SOUTH, "count": 5, "seconds": 10, "mode": "cross_region"})
    assert held.status_code == 200 and held.json()["project_id"] == south_project
    south = server.client(region=SOUTH)
    refused = south.cross_region(
        south.image_named("debian-12-base")["id"],
        {"name": "x", "region": NORTH, "project_name": NORTH, "agency_name": "ims_admin_agency"},
    )
    assert code_of(refused) == "IMG.0149"
    assert south.copy(south.image_named("debian-12-base")["id"], {"name": "in region"}).status_code == 200
    for body in (
        {"seconds": 0},
        {"count": 0, "seconds": 1},
        {"mode": "sideways", "seconds": 1},
        {"region": "mars-1", "seconds": 1},
        {"colour": "red", "seconds": 1},
        {"project_id": server.project, "region": SOUTH, "seconds": 1},
    ):
        assert server.control("external_jobs", body).status_code == 400, body
    assert server.control("external_jobs", {"project_id": "f" * 32, "seconds": 1}).status_code == 404


def test_an_error_outage_fails_every_call_unprocessed_then_ends(
    app_sim: Callable[..., Any], token_body: Callable[..., Any]
) -> None:
    server = app_sim(regions=True, copy_seconds=60)
    client, south = server.client(), server.client(region=SOUTH)
    source = client.image_named("debian-12-base")["id"]
    started = server.control("outage", {"mode": "error", "seconds": 10, "region": NORTH})
    assert started.json() == {"outages": {NORTH: {"mode": "error", "remaining_seconds": 10.0}}}
    answers = [
        client.copy(source, {"name": "during"}),
        client.get("/v2/cloudimages"),
        server.plain.post("/v3/auth/tokens", json=token_body()),
        client.get("/v2/cloudimages", tamper=lambda h: h.pop("Authorization")),
    ]  # before authentication
    for answer in answers:
        assert answer.status_code in (502, 503, 504), answer.text
        assert answer.json()["error_code"] in ("APIGW.0201", "APIGW.0613") and answer.headers["x-request-id"]
    assert south.images(name="debian-12-base")  # the other region is up
    assert server.introspect("jobs")["jobs"] == []  # the copy was not processed
    faults = server.introspect("stats")["faults"]
    assert faults["outage_error"] == 4
    server.clock.advance(10)
    assert server.introspect("outage") == {"outages": {}}
    assert client.copy(source, {"name": "after"}).status_code == 200
    # An outage can be ended early.
    server.control("outage", {"mode": "error", "seconds": 100})
    assert set(server.introspect("outage")["outages"]) == {NORTH, SOUTH}
    assert server.control("outage", {"seconds": 0}).json() == {"outages": {}}
    assert client.get("/v2/cloudimages").status_code == 200
    for bad in (
        {"mode": "flood", "seconds": 1},
        {"mode": "error"},
        {"mode": "error", "seconds": -1},
        {"mode": "error", "seconds": 1, "region": "mars-1"},
    ):
        assert server.control("outage", bad).status_code == 400, bad


@pytest.fixture
def process(sim: Callable[..., Any]) -> Any:
    return sim(copy_seconds=30)


def test_a_hang_outage_outlasts_the_read_timeout_and_processes_nothing(
    process: Any, waiter: Callable[..., Any]
) -> None:
    client = process.client()
    source = client.image_named("debian-12-base")["id"]
    assert process.control("outage", {"mode": "hang", "seconds": 2}).status_code == 200
    begun = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.copy(source, {"name": "hung"}, timeout=0.5)
    assert process.introspect("health")["status"] == "ok"  # /_sim/ still answers
    late = client.get("/v2/cloudimages", timeout=10)  # held until the outage is over, then a 504
    assert late.status_code == 504 and late.json()["error_code"] == "APIGW.0201"
    assert time.monotonic() - begun >= 1.5
    assert client.get("/v2/cloudimages").status_code == 200
    assert process.introspect("jobs")["jobs"] == [] and client.images(name="hung") == []
    assert process.introspect("stats")["faults"]["outage_hang"] == 2


def test_a_refuse_outage_resets_connections(process: Any, waiter: Callable[..., Any]) -> None:
    client = process.client()
    assert client.get("/v2/cloudimages").status_code == 200  # a kept-alive connection exists
    process.control("outage", {"mode": "refuse", "seconds": 1.5})
    for _ in range(2):  # the kept-alive connection, then a new one
        with pytest.raises(httpx.TransportError):
            client.get("/v2/cloudimages")
    assert process.introspect("outage")["outages"]["cn-north-4"]["mode"] == "refuse"
    waiter(lambda: process.introspect("outage") == {"outages": {}}, timeout=5, what="the outage's end")
    assert client.get("/v2/cloudimages").status_code == 200
    assert process.introspect("stats")["faults"]["outage_refuse"] >= 2
