"""``POST /_sim/images``: new private images on demand, in the listing (sorted and paged), the quota and the tags
API; every field, and bad input refused with a 4xx naming the field."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from simulator.timefmt import image_time

HOME = "ac234de25c6741d2b1273da49eea1b9e"
OTHER = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def server(app_sim: Callable[..., Any]) -> Any:
    return app_sim(project_ids=(HOME, OTHER))


def add(server: Any, **body: Any) -> list[dict[str, Any]]:
    response = server.control("images", body)
    assert response.status_code == 200, response.text
    return response.json()["images"]


def quota_used(client: Any) -> int:
    return client.get("/v1/cloudimages/quota").json()["quotas"]["resources"][0]["used"]


def test_added_images_come_first_in_the_listing_and_count_in_the_quota(server: Any) -> None:
    client = server.client(HOME)
    assert quota_used(client) == 10
    made = add(server, count=3)
    assert [set(image) for image in made] == [{"id", "name", "created_at"}] * 3
    assert {image["created_at"] for image in made} == {image_time(server.clock())}
    # Newest first; images made in the same second list the last made first.
    listed = client.images()
    assert [image["id"] for image in listed[:3]] == [image["id"] for image in reversed(made)]
    assert quota_used(client) == 13
    # Paged by marker, as the contract says: the pages put together are the whole listing.
    pages, marker = [], None
    while True:
        page = client.images(limit="4", **({"marker": marker} if marker else {}))
        if not page:
            break
        pages += page
        marker = page[-1]["id"]
    assert [image["id"] for image in pages] == [image["id"] for image in listed] and len(pages) == 13
    # Shaped like the catalogue's ordinary images: active, private, unencrypted, untagged.
    record = client.get(f"/v2/images/{made[0]['id']}").json()
    assert (record["status"], record["__imagetype"], record["visibility"], record["owner"]) == (
        "active",
        "private",
        "private",
        HOME,
    )
    assert record["active_at"] == record["created_at"] and "__system__cmkid" not in record
    assert record["tags"] == [] and record["name"] == made[0]["name"]
    # The other project is untouched.
    assert quota_used(server.client(OTHER)) == 10


def test_names_continue_a_lineage(server: Any) -> None:
    # Without a template each image continues a lineage of the project, or starts one at v1.
    versions: dict[str, list[int]] = {}
    for image in add(server, count=20):
        stem, version = re.fullmatch(r"(.+-v)(\d+)", image["name"]).groups()  # type: ignore[union-attr]
        versions.setdefault(stem, []).append(int(version))
    assert all(numbers == list(range(1, len(numbers) + 1)) for numbers in versions.values())
    assert any(len(numbers) > 1 for numbers in versions.values())
    # A template numbers on from the project's latest of that lineage; a plain name is taken as it is.
    assert [i["name"] for i in add(server, count=2, name="golden-web-v{n}")] == ["golden-web-v1", "golden-web-v2"]
    assert [i["name"] for i in add(server, name="golden-web-v{n}")] == ["golden-web-v3"]
    assert [i["name"] for i in add(server, count=2, name="fixed name")] == ["fixed name", "fixed name"]


def test_a_new_version_keeps_its_predecessors_os_and_size(server: Any) -> None:
    client = server.client(HOME)
    server.sim.state.first_project.images[client.image_named("debian-12-base")["id"]]["name"] = "debian-v7"
    (image,) = add(server, name="debian-v{n}")
    assert image["name"] == "debian-v8"
    record = client.image_named("debian-v8")
    assert (record["__platform"], record["__image_size"]) == ("Debian", str(1 << 30))


def test_the_same_seed_makes_the_same_images(app_sim: Callable[..., Any]) -> None:
    def names_and_ids() -> list[tuple[str, str]]:
        return [(i["name"], i["id"]) for i in add(app_sim(seed=5), count=5, encrypted=True)]

    assert names_and_ids() == names_and_ids()


def test_project_encrypted_and_tags(server: Any) -> None:
    other = server.client(OTHER)
    (image,) = add(server, project_id=OTHER, name="secret-db-v{n}", encrypted=True, tags={"team": "db", "env": ""})
    assert image["name"] == "secret-db-v1"
    record = other.image_named("secret-db-v1")
    enabled = {key["key_id"] for key in other.keys().values() if key["key_state"] == "2"}
    assert record["__system__cmkid"] in enabled and record["owner"] == OTHER
    assert record["tags"] == ["team=db", "env="]
    assert other.images(tag="team=db") == [record]
    tags = other.get(f"/v2/{OTHER}/images/{image['id']}/tags").json()["tags"]
    assert tags == [{"key": "team", "value": "db"}, {"key": "env", "value": ""}]
    assert server.client(HOME).images(name="secret-db-v1") == []
    # An encrypted image cannot be shared, as any other.
    refused = other.post("/v1/cloudimages/members", {"images": [image["id"]], "projects": [HOME]})
    assert refused.json()["error"]["code"] == "IMG.0098"


def test_the_quota_bounds_what_is_added(server: Any) -> None:
    server.control(f"projects/{HOME}", {"image_quota": 12})
    full = server.control("images", {"count": 3})
    assert full.status_code == 409 and "room for 2" in full.json()["error"]
    assert quota_used(server.client(HOME)) == 10  # all or nothing
    assert len(add(server, count=2)) == 2
    assert server.control("images", {}).status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"count": 0}, 400, "count"),
        ({"count": "2"}, 400, "count"),
        ({"count": True}, 400, "count"),
        ({"count": 1001}, 400, "count"),
        ({"colour": "red"}, 400, "unknown fields ['colour']"),
        ({"project_id": "f" * 32}, 404, "unknown project"),
        ({"project_id": 7}, 400, "project_id"),
        ({"name": ""}, 400, "name"),
        ({"name": 5}, 400, "name"),
        ({"name": "a-v{n}-{n}"}, 400, "at most once"),
        ({"name": "bad{x}-v{n}"}, 400, "IMG.0003"),
        ({"name": " lead-v{n}"}, 400, "IMG.0003"),
        ({"name": "x" * 129}, 400, "IMG.0002"),
        ({"encrypted": "yes"}, 400, "encrypted"),
        ({"tags": ["team=web"]}, 400, "tags"),
        ({"tags": {"k" * 37: "v"}}, 400, "tags"),
        ({"tags": {"k": 1}}, 400, "tags"),
        ({"tags": {f"k{n}": "v" for n in range(11)}}, 400, "tags"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(server: Any, body: dict[str, Any], status: int, words: str) -> None:
    response = server.control("images", body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert quota_used(server.client(HOME)) == 10


def test_bodies_that_are_not_objects_are_refused(server: Any) -> None:
    assert server.plain.post("/_sim/images", content=b"{nope").status_code == 400
    assert server.plain.post("/_sim/images", json=[1]).status_code == 400


def test_stats_count_images_added_on_request(server: Any) -> None:
    add(server, count=2)
    add(server, project_id=OTHER)
    assert server.introspect("stats")["new_images"]["requested"] == 3
