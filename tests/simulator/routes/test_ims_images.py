"""GET /v2/cloudimages and /v2/images/{id}: filters, default order, marker paging, the single view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

DEFAULT_NAMES_NEWEST_FIRST = [
    "uploading-image",
    "edge-128g",
    "bigdata-200g",
    "install-iso",
    "ecs-full-backup",
    "centos-6-legacy",
    "euleros-encrypted",
    "debian-12-base",
    "centos-7-app",
    "ubuntu-22.04-web",
]


@pytest.fixture
def client(sim: Callable[..., Any]) -> Any:
    return sim(copy_seconds=30).client()


def names(images: list[dict[str, Any]]) -> list[str]:
    return [image["name"] for image in images]


def test_default_order_is_created_at_descending(client: Any) -> None:
    assert names(client.images()) == DEFAULT_NAMES_NEWEST_FIRST
    assert names(client.images(sort_key="name", sort_dir="asc"))[:2] == ["bigdata-200g", "centos-6-legacy"]


def test_marker_paging_walks_every_image_once(client: Any) -> None:
    seen, marker = [], None
    while True:
        query = {"limit": "3", **({"marker": marker} if marker else {})}
        page = client.images(**query)
        if not page:
            break
        assert len(page) <= 3
        seen += names(page)
        marker = page[-1]["id"]
    assert seen == DEFAULT_NAMES_NEWEST_FIRST
    response = client.get("/v2/cloudimages", query=[("limit", "2")])
    assert list(response.json()) == ["images"]  # no next link, no marker


FILTER_CASES = [
    ({"name": "centos-7-app"}, ["centos-7-app"]),
    ({"status": "saving"}, ["uploading-image"]),
    ({"__whole_image": "true"}, ["ecs-full-backup"]),
    ({"virtual_env_type": "IsoImage"}, ["install-iso"]),
    ({"disk_format": "iso"}, ["install-iso"]),
    ({"__platform": "CentOS", "__os_version": "ignored"}, ["centos-6-legacy", "centos-7-app"]),
    ({"__imagetype": "private", "limit": "2"}, DEFAULT_NAMES_NEWEST_FIRST[:2]),
    ({"__imagetype": "gold"}, []),
    ({"visibility": "public"}, []),
    ({"enterprise_project_id": "0", "name": "debian-12-base"}, ["debian-12-base"]),
    ({"enterprise_project_id": "all_granted_eps", "name": "debian-12-base"}, ["debian-12-base"]),
    ({"enterprise_project_id": "6a7c0e1d-0000-0000-0000-000000000000"}, []),
    ({"created_at": "gt:2024-03-08T08:00:00Z"}, ["uploading-image", "edge-128g"]),
    ({"created_at": "lte:2024-03-01T08:00:00Z"}, ["ubuntu-22.04-web"]),
    ({"id": "465076de-dc36-4aec-80f5-ef9d8009428f"}, []),
    ({"marker": "465076de-dc36-4aec-80f5-ef9d8009428f"}, []),
]


def test_filters(client: Any) -> None:
    # One server for every case: starting one per case would dominate the run time.
    for filters, expected in FILTER_CASES:
        assert names(client.images(**filters)) == expected, filters
    assert "ecs-full-backup" not in names(client.images(__whole_image="false"))
    assert len(client.images(__whole_image="false")) == 9
    assert len(client.images(owner=client.project)) == 10
    assert client.images(owner="0" * 32) == []
    (encrypted,) = client.images(__system__cmkid=client.keys()["old-key"]["key_id"])
    assert encrypted["name"] == "euleros-encrypted"


def test_bad_query_values_single_view_and_quota(client: Any) -> None:
    for query in ([("limit", "x")], [("limit", "-1")], [("created_at", "soon")], [("created_at", "gt:yesterday")]):
        response = client.get("/v2/cloudimages", query=query)
        assert response.status_code == 400 and response.json()["error"]["code"] == "IMG.0001", query
    image = client.image_named("centos-7-app")
    assert client.get(f"/v2/images/{image['id']}").json() == image
    response = client.get("/v2/images/465076de-dc36-4aec-80f5-ef9d8009428f")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "IMG.0144", "message": "The image does not exist."}}
    response = client.get("/v1/cloudimages/quota")
    assert response.json() == {
        "quotas": {"resources": [{"type": "image", "used": 10, "quota": 50, "min": 1, "max": 1000}]}
    }


def test_selector_filters_as_documented_and_nothing_more(app_sim: Callable[..., Any]) -> None:
    client = app_sim().client()
    # Both documented time forms; a range needs two conditions, and IMS documents one: the last one counts.
    assert names(client.images(created_at="gt:2024-03-08 08:00:00")) == ["uploading-image", "edge-128g"]
    both = client.get(
        "/v2/cloudimages", query=[("created_at", "gt:2024-03-08T08:00:00Z"), ("created_at", "lt:2024-03-02T08:00:00Z")]
    )
    assert names(both.json()["images"]) == ["ubuntu-22.04-web"]
    assert names(client.images(__os_type="Linux", __platform="EulerOS")) == ["euleros-encrypted"]
    assert client.images(__os_type="Windows") == []
    assert names(client.images(status="active", disk_format="zvhd2", limit="1")) == ["edge-128g"]
    assert names(client.images(sort_key="created_at", sort_dir="asc", limit="1")) == ["ubuntu-22.04-web"]
    # Filters IMS does not have are ignored, not applied: a client must filter such things itself.
    assert len(client.images(name="centos")) == 0
    assert len(client.images(name_prefix="centos", encrypted="true", min_size="1")) == 10
