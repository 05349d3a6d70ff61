"""Image members: bulk add, remove and accept as jobs; refusals; member views; what a member then sees and may
copy."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from simulator.errors import IMS_MESSAGES

OWNER = "ac234de25c6741d2b1273da49eea1b9e"
FRIEND = "0123456789abcdef0123456789abcdef"
STRANGER = "fedcba9876543210fedcba9876543210"


def assert_ims_error(response: Any, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"code": code, "message": IMS_MESSAGES[code]}}


def many(n: int) -> tuple[str, ...]:
    return tuple(f"{i:032x}" for i in range(1, n + 1))


@pytest.fixture
def server(app_sim: Callable[..., Any]) -> Any:
    return app_sim(regions=True, project_ids=(OWNER, FRIEND, STRANGER), member_job_seconds=2)


def share(client: Any, images: list[str], projects: list[str], method: str = "POST") -> Any:
    return client.request(method, "/v1/cloudimages/members", body={"images": images, "projects": projects})


def test_share_then_accept_then_copy(server: Any) -> None:
    owner, friend = server.client(OWNER), server.client(FRIEND)
    image = owner.image_named("centos-7-app")["id"]
    added = share(owner, [image], [FRIEND])
    assert added.status_code == 200 and list(added.json()) == ["job_id"]
    job_id = added.json()["job_id"]
    running = owner.job(job_id)
    assert running["job_type"] == "imsAddImageMembersJob" and running["status"] in ("INIT", "RUNNING")
    assert owner.get(f"/v1/{OWNER}/cloudimages/{image}/members").json()["members"] == []
    server.clock.advance(2)
    done = owner.job(job_id)
    assert done["status"] == "SUCCESS"
    assert done["entities"] == {"results": [{"image_id": image, "project_id": FRIEND, "status": "success"}]}
    listed = owner.get(f"/v1/{OWNER}/cloudimages/{image}/members").json()
    (member,) = listed["members"]
    assert member["status"] == "pending" and member["member_id"] == FRIEND and member["image_id"] == image
    assert member["schema"] == "/v2/schemas/member" and listed["schema"] == "/v2/schemas/members"
    assert listed["page_info"] == {"current_count": 1}
    # The owner's image is now "shared"; a pending share is invisible in the member's default list.
    assert owner.images(id=image)[0]["__imagetype"] == "shared"
    assert owner.images(id=image)[0]["visibility"] == "shared"
    assert friend.images(id=image) == []
    assert [i["id"] for i in friend.images(visibility="shared", member_status="pending")] == [image]
    assert friend.get(f"/v2/images/{image}").json()["owner"] == OWNER
    assert_ims_error(friend.copy(image, {"name": "too early"}), "IMG.0196")
    accepted = friend.put("/v1/cloudimages/members", {"images": [image], "project_id": FRIEND, "status": "accepted"})
    assert accepted.status_code == 200, accepted.text
    assert friend.job(accepted.json()["job_id"])["job_type"] == "imsUpdateImageMembersJob"
    server.clock.advance(2)
    assert [i["id"] for i in friend.images(__imagetype="shared")] == [image]
    assert friend.get(f"/v2/images/{image}/members").json()["members"][0]["status"] == "accepted"
    copied = friend.copy(image, {"name": "mine"})
    assert copied.status_code == 200, copied.text
    assert friend.image_named("mine")["owner"] == FRIEND
    # Only the owner copies it to another region, or shares it further.
    assert_ims_error(
        friend.cross_region(
            image,
            {"name": "x", "region": "cn-south-1", "project_name": "cn-south-1", "agency_name": "ims_admin_agency"},
        ),
        "IMG.0047",
    )
    assert_ims_error(share(friend, [image], [STRANGER]), "IMG.0047")


def test_refusals(server: Any, app_sim: Callable[..., Any]) -> None:
    owner = server.client(OWNER)
    web = owner.image_named("ubuntu-22.04-web")["id"]
    cases = [
        (b"", "IMG.0007"),
        ({"images": [web]}, "IMG.0001"),
        ({"images": [], "projects": [FRIEND]}, "IMG.0001"),
        ({"images": [web], "projects": [FRIEND], "domains": ["d"]}, "IMG.0105"),
        ({"images": ["465076de-dc36-4aec-80f5-ef9d8009428f"], "projects": [FRIEND]}, "IMG.0027"),
        ({"images": [owner.image_named("euleros-encrypted")["id"]], "projects": [FRIEND]}, "IMG.0098"),
        ({"images": [owner.image_named("uploading-image")["id"]], "projects": [FRIEND]}, "IMG.0046"),
        ({"images": [web], "projects": [OWNER]}, "IMG.0076"),
        ({"images": [web], "projects": ["9" * 32]}, "IMG.0108"),
        ({"images": [web], "projects": [server.project_of("cn-south-1")]}, "IMG.0177"),
    ]
    for body, code in cases:
        raw = body if isinstance(body, bytes) else None
        assert_ims_error(owner.post("/v1/cloudimages/members", None if raw else body, raw=raw), code)
    assert server.introspect("jobs")["jobs"] == []
    friend = server.client(FRIEND)
    base = {"images": [web], "project_id": FRIEND, "status": "accepted"}
    assert_ims_error(friend.put("/v1/cloudimages/members", base), "IMG.0027")  # not shared with it
    assert_ims_error(friend.put("/v1/cloudimages/members", {**base, "project_id": STRANGER}), "IMG.0067")
    assert_ims_error(friend.put("/v1/cloudimages/members", {**base, "status": "maybe"}), "IMG.0001")
    assert_ims_error(server.client(STRANGER).get(f"/v1/{STRANGER}/cloudimages/{web}/members"), "IMG.0144", 404)


def test_member_limits_count_running_additions(app_sim: Callable[..., Any]) -> None:
    projects = many(130)
    server = app_sim(project_ids=projects, member_job_seconds=5)
    owner = server.client(projects[0])
    full = owner.image_named("ecs-full-backup")["id"]
    assert share(owner, [full], list(projects[1:10])).status_code == 200
    assert share(owner, [full], [projects[10]]).status_code == 200  # ten, one of them still being added
    assert_ims_error(share(owner, [full], [projects[11]]), "IMG.0088")
    web = owner.image_named("ubuntu-22.04-web")["id"]
    assert share(owner, [web], list(projects[1:129])).status_code == 200  # 128
    assert_ims_error(share(owner, [web], [projects[129]]), "IMG.0088")
    server.clock.advance(5)
    assert len(owner.get(f"/v2/images/{web}/members").json()["members"]) == 128
    # Accepting a full-ECS image needs the vault to keep its backups in.
    member = server.client(projects[1])
    refused = member.put("/v1/cloudimages/members", {"images": [full], "project_id": projects[1], "status": "accepted"})
    assert_ims_error(refused, "IMG.0184")


def test_members_page_by_marker_and_members_see_only_themselves(server: Any) -> None:
    owner = server.client(OWNER)
    image = owner.image_named("debian-12-base")["id"]
    share(owner, [image], [FRIEND, STRANGER])
    server.clock.advance(2)
    first = owner.get(f"/v1/{OWNER}/cloudimages/{image}/members", query=[("limit", "1")]).json()
    assert [m["member_id"] for m in first["members"]] == [FRIEND]
    marker = first["page_info"]["next_marker"]
    assert base64.urlsafe_b64decode(marker).decode() == FRIEND
    second = owner.get(f"/v1/{OWNER}/cloudimages/{image}/members", query=[("limit", "1"), ("marker", marker)])
    assert [m["member_id"] for m in second.json()["members"]] == [STRANGER]
    assert second.json()["page_info"] == {"current_count": 1}
    assert_ims_error(owner.get(f"/v1/{OWNER}/cloudimages/{image}/members", query=[("limit", "0")]), "IMG.0001")
    friend = server.client(FRIEND)
    assert [m["member_id"] for m in friend.get(f"/v2/images/{image}/members").json()["members"]] == [FRIEND]
    assert friend.get(f"/v1/{FRIEND}/cloudimages/{image}/members/{FRIEND}").json()["status"] == "pending"
    assert_ims_error(friend.get(f"/v2/images/{image}/members/{STRANGER}"), "IMG.0144", 404)
    # The native call accepts at once, without a job.
    now = friend.put(f"/v2/images/{image}/members/{FRIEND}", {"status": "rejected"})
    assert now.status_code == 200 and now.json()["status"] == "rejected"
    assert friend.images(id=image) == []  # rejected: not in the list
    assert [i["id"] for i in friend.images(visibility="shared", member_status="rejected")] == [image]
    assert_ims_error(friend.put(f"/v2/images/{image}/members/{STRANGER}", {"status": "accepted"}), "IMG.0067")


def test_removing_the_last_member_makes_the_image_private_again(server: Any) -> None:
    owner, friend = server.client(OWNER), server.client(FRIEND)
    image = owner.image_named("debian-12-base")["id"]
    share(owner, [image], [FRIEND])
    server.clock.advance(2)
    removed = share(owner, [image], [FRIEND, STRANGER], method="DELETE")  # STRANGER was never a member
    assert removed.status_code == 200, removed.text
    assert owner.job(removed.json()["job_id"])["job_type"] == "imsDelImageMembersJob"
    server.clock.advance(2)
    assert owner.get(f"/v2/images/{image}/members").json()["members"] == []
    assert owner.images(id=image)[0]["__imagetype"] == "private"
    assert friend.images(id=image, visibility="shared", member_status="pending") == []
    assert_ims_error(friend.get(f"/v2/images/{image}"), "IMG.0144", 404)


def test_only_the_member_accepts_and_copies_under_its_own_key_in_its_iam_project(
    server: Any, token_body: Callable[..., dict[str, Any]]
) -> None:
    """ims-contract.md §12: the receiving project accepts (its own project, from its credentials), then copies the
    share into a private image under its own key; enterprise projects may not (IMG.0155)."""
    owner, friend, stranger = server.client(OWNER), server.client(FRIEND), server.client(STRANGER)
    image = owner.image_named("ubuntu-22.04-web")["id"]
    share(owner, [image], [FRIEND])
    server.clock.advance(2)
    accept = {"images": [image], "project_id": FRIEND, "status": "accepted"}
    # Nobody accepts for the member: not the owner, not another project, whatever project_id they name.
    assert_ims_error(owner.put("/v1/cloudimages/members", accept), "IMG.0067")
    assert_ims_error(stranger.put("/v1/cloudimages/members", accept), "IMG.0067")
    assert_ims_error(stranger.put("/v1/cloudimages/members", {**accept, "project_id": STRANGER}), "IMG.0027")
    assert_ims_error(owner.put(f"/v2/images/{image}/members/{FRIEND}", {"status": "accepted"}), "IMG.0067")
    assert owner.get(f"/v2/images/{image}/members/{FRIEND}").json()["status"] == "pending"
    # The member does, under a token scoped to its project as well as under AK/SK.
    token = server.plain.post("/v3/auth/tokens", json=token_body("cn-north-4_2")).headers["X-Subject-Token"]
    by_token = server.client(None, token=token)
    accepted = by_token.put("/v1/cloudimages/members", accept)
    assert accepted.status_code == 200, accepted.text
    assert friend.job(accepted.json()["job_id"])["job_type"] == "imsUpdateImageMembersJob"
    server.clock.advance(2)
    assert owner.get(f"/v2/images/{image}/members/{FRIEND}").json()["status"] == "accepted"
    # Accepted, it is listed as IMS lists shared images, by type or by member status; the stranger sees nothing.
    assert [i["id"] for i in friend.images(__imagetype="shared")] == [image]
    assert [i["id"] for i in friend.images(visibility="shared", member_status="accepted")] == [image]
    assert friend.images(visibility="shared", member_status="pending") == []
    assert friend.get(f"/v2/images/{image}").json()["__imagetype"] == "shared"
    assert stranger.images(id=image) == [] and stranger.get(f"/v2/images/{image}").status_code == 404
    assert_ims_error(stranger.copy(image, {"name": "not mine"}), "IMG.0027")
    # Enterprise projects may not copy a shared image; the IAM project (no enterprise_project_id, or "0") may.
    enterprise = "b2f3c4d5-0000-4000-8000-000000000001"
    assert_ims_error(friend.copy(image, {"name": "ep", "enterprise_project_id": enterprise}), "IMG.0155")
    key = friend.keys()["app-key"]["key_id"]
    copied = friend.copy(image, {"name": "friends golden", "cmk_id": key, "enterprise_project_id": "0"})
    assert copied.status_code == 200, copied.text
    server.clock.advance(10)
    assert friend.job(copied.json()["job_id"])["status"] == "SUCCESS"
    mine = friend.image_named("friends golden")
    assert (mine["owner"], mine["__system__cmkid"], mine["__imagetype"], mine["status"]) == (
        FRIEND, key, "private", "active"
    )  # fmt: skip
    assert mine["__data_origin"] == f"image,cn-north-4,{image}"
    # The owner's own copies keep their enterprise projects: the rule is for shared images only.
    own = owner.copy(image, {"name": "owners ep copy", "enterprise_project_id": enterprise})
    assert own.status_code == 200, own.text


def test_copies_of_shared_images_can_be_held_to_no_key(app_sim: Callable[..., Any]) -> None:
    """--unencrypted-shared-copies: Huawei's Chinese user guide ("暂不支持复制为加密镜像") against OTC's."""
    server = app_sim(project_ids=(OWNER, FRIEND), member_job_seconds=0, unencrypted_shared_copies=True)
    owner, friend = server.client(OWNER), server.client(FRIEND)
    image = owner.image_named("debian-12-base")["id"]
    share(owner, [image], [FRIEND])
    assert friend.put(f"/v2/images/{image}/members/{FRIEND}", {"status": "accepted"}).status_code == 200
    key = friend.keys()["app-key"]["key_id"]
    assert_ims_error(friend.copy(image, {"name": "keyed", "cmk_id": key}), "IMG.0197")
    assert friend.copy(image, {"name": "plain"}).status_code == 200
    assert owner.copy(image, {"name": "owner keyed", "cmk_id": owner.keys()["app-key"]["key_id"]}).status_code == 200
