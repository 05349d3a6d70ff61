"""Several regions: each with its own endpoint, projects, catalogue and jobs; how clients find the endpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.catalog.records import image_id_for

NORTH = "cn-north-4"
NORTH_PROJECT = "ac234de25c6741d2b1273da49eea1b9e"


def test_each_region_has_its_own_projects_and_catalogue(app_sim: Callable[..., Any]) -> None:
    server = app_sim(regions=True)
    south_project = server.project_of("cn-south-1")
    north, south = server.client(), server.client(region="cn-south-1")
    assert north.image_named("centos-7-app")["id"] == image_id_for(NORTH_PROJECT, "centos-7-app")
    assert south.image_named("centos-7-app")["id"] == image_id_for(south_project, "centos-7-app")
    assert south.image_named("centos-7-app")["owner"] == south_project
    assert south.keys()["app-key"]["realm"] == "cn-south-1"
    # A project of another region is unknown at this region's endpoint, as is its image.
    stranger = server.client(NORTH_PROJECT, region="cn-south-1")
    refused = stranger.get("/v2/cloudimages")
    assert refused.status_code == 403 and refused.json()["error_code"] == "APIGW.0310"
    assert south.images(id=north.image_named("centos-7-app")["id"]) == []
    by_region = server.introspect("stats")["by_region"]
    assert by_region["cn-south-1"]["list_images"] == {"200": 3, "403": 1}
    assert by_region[NORTH]["list_images"] == {"200": 2}


def test_regions_view_gives_each_endpoint_and_default_project(app_sim: Callable[..., Any]) -> None:
    server = app_sim(regions=True)
    view = server.introspect("regions")
    assert view == {
        NORTH: {
            "endpoint": f"http://ims.{NORTH}.myhuaweicloud.com",
            "project_id": NORTH_PROJECT,
            "project_name": NORTH,
            "port": 8780,
            "projects": [{"project_id": NORTH_PROJECT, "project_name": NORTH}],
        },
        "cn-south-1": {
            "endpoint": "http://ims.cn-south-1.myhuaweicloud.com",
            "project_id": server.project_of("cn-south-1"),
            "project_name": "cn-south-1",
            "port": 8781,
            "projects": [{"project_id": server.project_of("cn-south-1"), "project_name": "cn-south-1"}],
        },
    }
    # A client that came by address (not by regional host name) is told addresses with each region's port.
    by_port = server.plain.get("/_sim/regions", headers={"host": "10.0.0.7:8780"}).json()
    assert by_port[NORTH]["endpoint"] == "http://10.0.0.7:8780"
    assert by_port["cn-south-1"]["endpoint"] == "http://10.0.0.7:8781"
    health = server.introspect("health")
    assert health["regions"] == [NORTH, "cn-south-1"] and health["region"] == NORTH
    assert health["project_ids"] == [NORTH_PROJECT, server.project_of("cn-south-1")]


def test_iam_is_global_and_its_catalogue_lists_every_region(
    app_sim: Callable[..., Any], token_body: Callable[..., Any]
) -> None:
    server = app_sim(regions=True)
    issued = server.plain.post("/v3/auth/tokens", json=token_body("cn-south-1"))
    assert issued.status_code == 201, issued.text
    token = issued.headers["x-subject-token"]
    body = issued.json()["token"]
    assert body["project"] == {
        "id": server.project_of("cn-south-1"),
        "name": "cn-south-1",
        "domain": body["project"]["domain"],
    }
    ims = next(entry for entry in body["catalog"] if entry["type"] == "image")
    assert {e["region"]: e["url"] for e in ims["endpoints"]} == {
        NORTH: f"http://ims.{NORTH}.myhuaweicloud.com",
        "cn-south-1": "http://ims.cn-south-1.myhuaweicloud.com",
    }
    # The token works in its project's region and nowhere else.
    assert server.client(None, region="cn-south-1", token=token).get("/v2/cloudimages").status_code == 200
    elsewhere = server.client(None, token=token).get("/v2/cloudimages")
    assert elsewhere.status_code == 403 and elsewhere.json()["error_code"] == "APIGW.0310"


def test_agencies_can_be_listed_and_defined(app_sim: Callable[..., Any]) -> None:
    server = app_sim(regions=True)
    assert server.introspect("agencies") == {
        "agencies": [{"name": "ims_admin_agency", "regions": "*", "cbr_regions": "*"}]
    }
    made = server.control("agencies", {"name": "south_only", "regions": ["cn-south-1"], "cbr_regions": []})
    assert made.status_code == 200, made.text
    assert made.json()["agencies"][1] == {"name": "south_only", "regions": ["cn-south-1"], "cbr_regions": []}
    assert server.control("agencies", {"name": "x", "regions": ["mars-1"]}).status_code == 400
    assert server.control("agencies", {"regions": "*"}).json() == {"error": "give the agency's 'name'"}


def test_a_real_process_serves_each_region_on_its_own_port(
    regions_sim: Callable[..., Any], waiter: Callable[..., Any]
) -> None:
    server = regions_sim([NORTH, "cn-south-1"], "--copy-seconds", "0.5")
    ports = {region: view["port"] for region, view in server.regions.items()}
    assert len(set(ports.values())) == 2 and all(ports.values())
    assert server.regions["cn-south-1"]["endpoint"] == f"http://127.0.0.1:{ports['cn-south-1']}"
    north, south = server.region_client(NORTH), server.region_client("cn-south-1")
    south_project = server.regions["cn-south-1"]["project_id"]
    assert south.image_named("debian-12-base")["id"] == image_id_for(south_project, "debian-12-base")
    source = north.image_named("debian-12-base")["id"]
    job_id = north.cross_region(
        source,
        {"name": "to south", "region": "cn-south-1", "project_name": "cn-south-1", "agency_name": "ims_admin_agency"},
    )
    assert job_id.status_code == 200, job_id.text
    done = waiter(
        lambda: (job := north.job(job_id.json()["job_id"]))["status"] == "SUCCESS" and job, what="the cross-region copy"
    )
    copy = south.images(id=done["entities"]["image_id"])
    assert copy[0]["status"] == "active" and copy[0]["__data_origin"] == f"image,{NORTH},{source}"
    assert north.images(name="to south") == []
