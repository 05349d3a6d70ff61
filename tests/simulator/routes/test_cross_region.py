"""POST /v1/cloudimages/{id}/cross_region_copy: every refusal, the job in the source region, the image in the
destination project, its own concurrency limit, and a failed copy leaving nothing usable."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from simulator.config import FaultKnobs
from simulator.errors import IMS_MESSAGES

NORTH = "cn-north-4"
SOUTH = "cn-south-1"
AGENCY = "ims_admin_agency"


def assert_ims_error(response: Any, code: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"error": {"code": code, "message": IMS_MESSAGES[code]}}


def body(name: str = "copy", **extra: Any) -> dict[str, Any]:
    return {"name": name, "region": SOUTH, "project_name": SOUTH, "agency_name": AGENCY, **extra}


@pytest.fixture
def server(app_sim: Callable[..., Any]) -> Any:
    return app_sim(regions=True, copy_seconds=10)


def test_every_refusal_has_its_code(server: Any) -> None:
    north = server.client()
    server.control("agencies", {"name": "no_rights", "regions": []})
    server.control("agencies", {"name": "no_cbr", "regions": "*", "cbr_regions": []})
    web = north.image_named("ubuntu-22.04-web")["id"]
    full = north.image_named("ecs-full-backup")["id"]
    without = body()
    cases = [
        (web, b"", "IMG.0007"),
        (web, {"name": "bad|name", "region": SOUTH}, "IMG.0003"),
        (web, {k: v for k, v in without.items() if k != "region"}, "IMG.0147"),
        (web, body(region="mars-1"), "IMG.0147"),
        (web, body(region=NORTH), "IMG.0142"),
        (web, {k: v for k, v in without.items() if k != "project_name"}, "IMG.0104"),
        (web, body(project_name=NORTH), "IMG.0145"),
        (web, {k: v for k, v in without.items() if k != "agency_name"}, "IMG.0179"),
        (web, body(agency_name="nobody"), "IMG.0179"),
        (web, body(agency_name="no_rights"), "IMG.0151"),
        ("465076de-dc36-4aec-80f5-ef9d8009428f", body(), "IMG.0027"),
        (north.image_named("uploading-image")["id"], body(), "IMG.0046"),
        (north.image_named("euleros-encrypted")["id"], body(), "IMG.0143"),
        (north.image_named("install-iso")["id"], body(), "IMG.0167"),
        (full, body(), "IMG.0184"),
        (full, body(vault_id="vault-1", agency_name="no_cbr"), "IMG.0151"),
        (web, body(vault_id=7), "IMG.0001"),
    ]
    for source, payload, code in cases:
        raw = payload if isinstance(payload, bytes) else None
        assert_ims_error(north.cross_region(source, None if raw is not None else payload, raw=raw), code)
    # Nothing refused left a trace in either region.
    assert server.client(region=SOUTH).images(name="copy") == [] and north.images(name="copy") == []
    assert server.introspect("jobs")["jobs"] == []


def test_size_limit_depends_on_the_source_region(app_sim: Callable[..., Any]) -> None:
    # Out of CN-Beijing4 up to 300 GB may be copied across regions; elsewhere 128 GB, or what is configured.
    big = app_sim(regions=True).client()
    assert big.cross_region(big.image_named("bigdata-200g")["id"], body()).status_code == 200
    capped = app_sim(regions=True, cross_region_max_gb=128).client()
    assert_ims_error(capped.cross_region(capped.image_named("bigdata-200g")["id"], body()), "IMG.0146")
    assert capped.cross_region(capped.image_named("edge-128g")["id"], body()).status_code == 200
    south = app_sim(regions=True).client(region=SOUTH)
    to_north = {**body(), "region": NORTH, "project_name": NORTH}
    assert south.cross_region(south.image_named("bigdata-200g")["id"], to_north).status_code == 200


def test_the_destination_quota_applies(server: Any) -> None:
    north = server.client()
    south_project = server.project_of(SOUTH)
    changed = server.control(f"projects/{south_project}", {"image_quota": 10})
    assert changed.status_code == 200 and changed.json()["quota_used"] == 10
    assert_ims_error(north.cross_region(north.image_named("debian-12-base")["id"], body()), "IMG.0015")


def test_accepted_copy_job_lives_in_the_source_and_the_image_in_the_destination(server: Any) -> None:
    north, south = server.client(), server.client(region=SOUTH)
    source = north.image_named("debian-12-base")
    response = north.cross_region(source["id"], body("debian south", description="moved"))
    assert response.status_code == 200 and list(response.json()) == ["job_id"]
    job_id = response.json()["job_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    job = north.job(job_id)
    assert job["job_type"] == "imsCrossRegionCopyImageJob" and job["status"] == "INIT"
    # The destination project does not know the job.
    assert south.get(f"/v1/{server.project_of(SOUTH)}/jobs/{job_id}").status_code == 404
    (image,) = south.images(name="debian south")
    assert image["status"] == "queued" and image["owner"] == server.project_of(SOUTH)
    assert image["__data_origin"] == f"image,{NORTH},{source['id']}" and image["__description"] == "moved"
    assert image["__originalimagename"] == source["id"] and image["__image_size"] == source["__image_size"]
    assert "__system__cmkid" not in image and image["__imagetype"] == "private"
    server.clock.advance(5)
    assert north.job(job_id)["status"] == "RUNNING" and south.images(name="debian south")[0]["status"] == "saving"
    server.clock.advance(5)
    done = north.job(job_id)
    assert done["status"] == "SUCCESS" and done["entities"] == {"image_id": image["id"], "image_name": "debian south"}
    assert south.images(id=image["id"])[0]["status"] == "active"
    assert north.images(name="debian south") == []
    summary = {p["project_id"]: p for p in server.introspect("projects")["projects"]}
    assert summary[server.project]["cross_region_jobs_total"] == 1 and summary[server.project]["jobs_total"] == 0
    record = server.introspect("jobs")["jobs"][0]
    assert record["slot"] == "cross_region" and record["image_project_id"] == server.project_of(SOUTH)


def test_full_ecs_copy_with_a_vault_stays_full_ecs(server: Any) -> None:
    north, south = server.client(), server.client(region=SOUTH)
    response = north.cross_region(north.image_named("ecs-full-backup")["id"], body("whole", vault_id="v-1"))
    assert response.status_code == 200, response.text
    assert south.images(name="whole")[0]["__whole_image"] == "true"


def test_five_cross_region_copies_at_once_apart_from_in_region_ones(server: Any) -> None:
    north = server.client()
    web = north.image_named("ubuntu-22.04-web")["id"]
    for n in range(5):
        assert north.cross_region(web, body(f"c{n}")).status_code == 200
    assert_ims_error(north.cross_region(web, body("c5")), "IMG.0149")
    for n in range(5):  # the in-region pool is untouched
        assert north.copy(web, {"name": f"i{n}"}).status_code == 200
    server.clock.advance(10)
    assert north.cross_region(web, body("c6")).status_code == 200
    view = server.introspect("jobs")
    assert view["peak_concurrent_cross_region_jobs"][server.project] == 5
    assert view["peak_concurrent_jobs"][server.project] == 5


def test_a_shared_pool_counts_both_kinds(app_sim: Callable[..., Any]) -> None:
    server = app_sim(regions=True, copy_seconds=10, shared_job_pool=True)
    north = server.client()
    web = north.image_named("ubuntu-22.04-web")["id"]
    for n in range(3):
        assert north.cross_region(web, body(f"c{n}")).status_code == 200
    for n in range(2):
        assert north.copy(web, {"name": f"i{n}"}).status_code == 200
    assert_ims_error(north.copy(web, {"name": "i2"}), "IMG.0060")
    assert_ims_error(north.cross_region(web, body("c3")), "IMG.0149")


def test_a_failed_copy_leaves_nothing_usable_in_the_destination(app_sim: Callable[..., Any]) -> None:
    server = app_sim(regions=True, copy_seconds=10, knobs=FaultKnobs(fail_rate=1.0))
    north, south = server.client(), server.client(region=SOUTH)
    job_id = north.cross_region(north.image_named("debian-12-base")["id"], body("doomed")).json()["job_id"]
    quota_before = server.introspect("projects")["projects"][1]["quota_used"]
    server.clock.advance(10)
    failed = north.job(job_id)
    assert failed["status"] == "FAIL" and failed["error_code"] == "IMG.0999" and failed["entities"] == {}
    (image,) = south.images(name="doomed")
    assert image["status"] == "killed" and south.images(name="doomed", status="active") == []
    assert server.introspect("projects")["projects"][1]["quota_used"] == quota_before - 1
