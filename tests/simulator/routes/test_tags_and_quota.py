"""Image tags (batch create/delete, list, the list's tag filter), deleting images, and changing the quota while
running."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from simulator.errors import IMS_MESSAGES

OWNER = "ac234de25c6741d2b1273da49eea1b9e"
FRIEND = "0123456789abcdef0123456789abcdef"


def assert_ims_error(response: Any, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"code": code, "message": IMS_MESSAGES[code]}}


@pytest.fixture
def server(app_sim: Callable[..., Any]) -> Any:
    return app_sim(project_ids=(OWNER, FRIEND), copy_seconds=10, member_job_seconds=0)


def tags(client: Any, image: str, action: str, pairs: Any) -> Any:
    return client.post(f"/v2/{client.project}/images/{image}/tags/action", {"action": action, "tags": pairs})


def listed(client: Any, image: str) -> list[dict[str, str]]:
    response = client.get(f"/v2/{client.project}/images/{image}/tags")
    assert response.status_code == 200, response.text
    return response.json()["tags"]


def test_create_overwrite_delete_and_filter(server: Any) -> None:
    client = server.client(OWNER)
    image = client.image_named("centos-7-app")["id"]
    made = tags(client, image, "create", [{"key": "team", "value": "web"}, {"key": "env", "value": ""}])
    assert made.status_code == 204 and made.content == b""
    assert listed(client, image) == [{"key": "team", "value": "web"}, {"key": "env", "value": ""}]
    assert client.images(id=image)[0]["tags"] == ["team=web", "env="]
    assert [i["id"] for i in client.images(tag="team=web")] == [image]
    assert client.images(tag="team") == [] and client.images(tag="team=api") == []
    # Creating again overwrites the value; the same pair twice changes nothing.
    assert tags(client, image, "create", [{"key": "team", "value": "api"}]).status_code == 204
    assert tags(client, image, "create", [{"key": "team", "value": "api"}]).status_code == 204
    assert listed(client, image)[0] == {"key": "team", "value": "api"}
    # Deleting: a pair with another value stays, a key alone goes, an absent key is no error.
    assert tags(client, image, "delete", [{"key": "team", "value": "web"}]).status_code == 204
    assert len(listed(client, image)) == 2
    assert tags(client, image, "delete", [{"key": "team"}, {"key": "nope", "value": "x"}]).status_code == 204
    assert listed(client, image) == [{"key": "env", "value": ""}]
    # A copy starts without tags.
    job = client.copy_named("centos-7-app", "copied")
    assert job and client.image_named("copied")["tags"] == []


def test_tag_refusals(server: Any) -> None:
    client = server.client(OWNER)
    image = client.image_named("debian-12-base")["id"]
    ten = [{"key": f"k{n}", "value": "v"} for n in range(10)]
    assert tags(client, image, "create", ten).status_code == 204
    assert_ims_error(tags(client, image, "create", [{"key": "eleventh", "value": "v"}]), "IMG.0116")
    assert tags(client, image, "create", [{"key": "k0", "value": "changed"}]).status_code == 204  # still ten
    other = client.image_named("centos-7-app")["id"]
    for pairs in (
        [{"key": "k" * 37, "value": "v"}],
        [{"key": "k", "value": "v" * 44}],
        [{"key": "  ", "value": "v"}],
        [{"key": "k", "value": None}],
        [{"key": "k", "value": "a"}, {"key": "k", "value": "b"}],
    ):
        assert_ims_error(tags(client, other, "create", pairs), "IMG.0115")
    assert tags(client, other, "create", [{"key": "k" * 36, "value": "v" * 43}]).status_code == 204
    assert tags(client, other, "delete", [{"key": "k" * 127, "value": "v" * 255}]).status_code == 204
    assert_ims_error(tags(client, other, "delete", [{"key": "k" * 128}]), "IMG.0115")
    assert_ims_error(tags(client, other, "Create", []), "IMG.0001")
    assert_ims_error(tags(client, other, "create", {"key": "k"}), "IMG.0001")
    assert_ims_error(tags(client, "465076de-dc36-4aec-80f5-ef9d8009428f", "create", []), "IMG.0144", 404)
    wrong_path = client.get(f"/v2/{FRIEND}/images/{image}/tags")
    assert wrong_path.status_code == 403 and wrong_path.json()["error_code"] == "APIGW.0302"
    # A member may look at a shared image but not tag it.
    client.post("/v1/cloudimages/members", {"images": [image], "projects": [FRIEND]})
    assert_ims_error(tags(server.client(FRIEND), image, "create", [{"key": "a", "value": "b"}]), "IMG.0047")


def test_quota_changes_and_deleting_images_make_room(server: Any) -> None:
    client = server.client(OWNER)

    def quota() -> dict[str, Any]:
        return client.get("/v1/cloudimages/quota").json()["quotas"]["resources"][0]

    assert quota() == {"type": "image", "used": 10, "quota": 50, "min": 1, "max": 1000}
    assert server.control(f"projects/{OWNER}", {"image_quota": 11}).json()["image_quota"] == 11
    job = client.copy_named("debian-12-base", "fills it")
    assert quota()["used"] == 11
    assert_ims_error(client.copy(client.image_named("debian-12-base")["id"], {"name": "no room"}), "IMG.0015")
    # The copy being made cannot be deleted yet, nor an upload in progress; another image can.
    copy_id = client.image_named("fills it")["id"]
    assert_ims_error(client.delete(f"/v2/images/{copy_id}"), "IMG.0090")
    assert_ims_error(client.delete(f"/v2/images/{client.image_named('uploading-image')['id']}"), "IMG.0090")
    gone = client.delete(f"/v2/images/{client.image_named('install-iso')['id']}", {"delete_backup": False})
    assert gone.status_code == 204 and gone.content == b""
    assert client.images(name="install-iso") == [] and quota()["used"] == 10
    assert client.copy(client.image_named("debian-12-base")["id"], {"name": "room again"}).status_code == 200
    assert_ims_error(client.delete("/v2/images/465076de-dc36-4aec-80f5-ef9d8009428f"), "IMG.0144", 404)
    # /_sim/images/delete does what the owner would, wherever the images are.
    server.clock.advance(10)
    assert client.job(job)["status"] == "SUCCESS"
    friend_image = server.client(FRIEND).image_named("centos-7-app")["id"]
    answer = server.control(
        "images/delete", {"image_ids": [copy_id, friend_image, "nope", client.image_named("uploading-image")["id"]]}
    )
    assert answer.status_code == 200
    assert answer.json()["deleted"] == [copy_id, friend_image]
    assert answer.json()["refused"] == {"nope": "IMG.0144", client.image_named("uploading-image")["id"]: "IMG.0090"}
    assert server.client(FRIEND).images(name="centos-7-app") == []
    # The quota can also be raised past what is used; bad changes are refused whole.
    raised = server.control(f"projects/{OWNER}", {"image_quota": 100, "job_limit": 2, "cross_region_job_limit": 1})
    assert raised.status_code == 200 and quota()["quota"] == 100
    assert raised.json()["job_limit"] == 2 and raised.json()["cross_region_job_limit"] == 1
    assert server.control(f"projects/{OWNER}", {"image_quota": -1}).status_code == 400
    assert server.control(f"projects/{OWNER}", {"colour": 1}).status_code == 400
    assert server.control(f"projects/{'f' * 32}", {"image_quota": 1}).status_code == 404
    assert quota()["quota"] == 100


def test_a_member_cannot_delete_a_shared_image(server: Any) -> None:
    owner = server.client(OWNER)
    image = owner.image_named("debian-12-base")["id"]
    owner.post("/v1/cloudimages/members", {"images": [image], "projects": [FRIEND]})
    assert_ims_error(server.client(FRIEND).delete(f"/v2/images/{image}"), "IMG.0092")
    assert owner.delete(f"/v2/images/{image}").status_code == 204
    # Deleting it ends the sharing.
    assert server.client(FRIEND).images(visibility="shared", member_status="pending") == []


def test_deleting_follows_the_contract(server: Any) -> None:
    """ims-contract.md §12: owner only, 204, members lose the image, it leaves the quota; a member's copy of it
    survives."""
    owner, friend = server.client(OWNER), server.client(FRIEND)
    (added,) = server.control("images", {"name": "shared-v{n}"}).json()["images"]
    image = added["id"]
    assert owner.post("/v1/cloudimages/members", {"images": [image], "projects": [FRIEND]}).status_code == 200
    accepted = friend.put(f"/v2/images/{image}/members/{FRIEND}", {"status": "accepted"})
    assert accepted.status_code == 200, accepted.text
    assert [i["id"] for i in friend.images(name="shared-v1")] == [image]
    copy_job = friend.copy_named("shared-v1", "friends own")
    server.clock.advance(10)
    assert friend.job(copy_job)["status"] == "SUCCESS"

    def used(client: Any) -> int:
        return client.get("/v1/cloudimages/quota").json()["quotas"]["resources"][0]["used"]

    before = used(owner), used(friend)
    # Only the owner deletes it: a member is refused, anyone else does not see it.
    assert_ims_error(friend.delete(f"/v2/images/{image}"), "IMG.0092")
    gone = owner.delete(f"/v2/images/{image}")
    assert gone.status_code == 204 and gone.content == b""
    assert (used(owner), used(friend)) == (before[0] - 1, before[1])
    # The member loses it everywhere: listing, view, members, tags; its copy stays.
    assert friend.images(name="shared-v1") == [] and owner.images(id=image) == []
    assert friend.images(visibility="shared", member_status="accepted") == []
    assert_ims_error(friend.get(f"/v2/images/{image}"), "IMG.0144", 404)
    assert_ims_error(friend.get(f"/v2/images/{image}/members"), "IMG.0144", 404)
    # Copying or answering the share now meets a missing image, as for any unknown ID.
    assert_ims_error(friend.copy(image, {"name": "too late"}), "IMG.0027")
    assert_ims_error(friend.put("/v1/cloudimages/members", {"images": [image], "project_id": FRIEND,
                                                            "status": "accepted"}), "IMG.0027")  # fmt: skip
    assert_ims_error(owner.get(f"/v2/{OWNER}/images/{image}/tags"), "IMG.0144", 404)
    assert friend.image_named("friends own")["status"] == "active"
    # Deleted once is gone: a second delete is a 404, by the owner too.
    assert_ims_error(owner.delete(f"/v2/images/{image}"), "IMG.0144", 404)
    assert_ims_error(friend.delete(f"/v2/images/{image}"), "IMG.0144", 404)
