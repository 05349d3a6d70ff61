"""POST /v1|v2.1/cloudimages/{id}/copy over real HTTP: every refusal in checklist order, and acceptance."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from simulator.errors import IMS_MESSAGES

JOB_ID = re.compile(r"[0-9a-f]{32}")


def assert_ims_error(response: Any, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"code": code, "message": IMS_MESSAGES[code]}}
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.fixture
def client(sim: Callable[..., Any]) -> Any:
    return sim(copy_seconds=30).client()


def test_every_refusal_has_its_code_and_body(client: Any) -> None:
    web = client.image_named("ubuntu-22.04-web")["id"]
    keys = client.keys()
    cases = [
        (web, b"", "IMG.0007"),
        (web, b"{", "IMG.0001"),
        (web, {"description": "no name"}, "IMG.0013"),
        (web, {"name": "n" * 129}, "IMG.0002"),
        (web, {"name": "bad|char"}, "IMG.0003"),
        (web, {"name": "ok", "description": "x" * 1025}, "IMG.0004"),
        (web, {"name": "ok", "description": "<script>"}, "IMG.0054"),
        ("465076de-dc36-4aec-80f5-ef9d8009428f", {"name": "ok"}, "IMG.0027"),
        (client.image_named("uploading-image")["id"], {"name": "ok"}, "IMG.0046"),
        (client.image_named("ecs-full-backup")["id"], {"name": "ok"}, "IMG.0130"),
        (client.image_named("install-iso")["id"], {"name": "ok"}, "IMG.0167"),
        (client.image_named("bigdata-200g")["id"], {"name": "ok"}, "IMG.0059"),
        (web, {"name": "ok", "cmk_id": "bd66288c-9081-460a-8227-4cbd0c814cb4"}, "IMG.0095"),
        (web, {"name": "ok", "cmk_id": keys["disabled-key"]["key_id"]}, "IMG.0097"),
        (web, {"name": "ok", "cmk_id": keys["retiring-key"]["key_id"]}, "IMG.0097"),
    ]
    for source, body, code in cases:
        raw = body if isinstance(body, bytes) else None
        response = client.copy(source, None if raw is not None else body, raw=raw)
        assert_ims_error(response, code)
    assert client.images(name="ok") == []  # nothing refused left a trace


def test_checks_run_in_checklist_order(client: Any) -> None:
    iso = client.image_named("install-iso")["id"]
    # A bad name is reported before the image problem, the ISO before the key problem.
    assert_ims_error(client.copy(iso, {"name": " x"}), "IMG.0003")
    assert_ims_error(client.copy(iso, {"name": "x", "cmk_id": "nope"}), "IMG.0167")


@pytest.mark.parametrize("version", ["v1", "v2.1"])
def test_accepted_copy_answers_a_job_id(client: Any, version: str) -> None:
    response = client.copy(client.image_named("edge-128g")["id"], {"name": "exactly 128 GiB"}, version=version)
    assert response.status_code == 200, response.text
    assert JOB_ID.fullmatch(response.json()["job_id"]) and list(response.json()) == ["job_id"]
    assert response.headers["x-request-id"]


def test_another_projects_image_is_not_visible(sim: Callable[..., Any]) -> None:
    other = "0123456789abcdef0123456789abcdef"
    server = sim(project_ids=["ac234de25c6741d2b1273da49eea1b9e", other], copy_seconds=30)
    mine, theirs = server.client(), server.client(other)
    foreign = theirs.image_named("centos-7-app")["id"]
    assert mine.images(id=foreign) == []
    assert_ims_error(mine.copy(foreign, {"name": "steal"}), "IMG.0027")
    assert mine.get(f"/v2/images/{foreign}").status_code == 404


def test_job_limit_answers_img_0060_until_a_slot_frees(sim: Callable[..., Any], waiter: Callable[..., Any]) -> None:
    client = sim(copy_seconds=1.5, job_limit=2).client()
    first = client.copy_named("centos-7-app", "c1")
    client.copy_named("centos-7-app", "c2")
    assert_ims_error(client.copy(client.image_named("centos-7-app")["id"], {"name": "c3"}), "IMG.0060")
    waiter(lambda: client.job(first)["status"] == "SUCCESS", what="a slot to free")
    waiter(
        lambda: client.copy(client.image_named("centos-7-app")["id"], {"name": "c3"}).status_code == 200,
        what="the third copy to be accepted",
    )


def test_quota_counts_in_progress_copies(sim: Callable[..., Any]) -> None:
    server = sim(copy_seconds=30, image_quota=12)  # the default catalogue holds 10 images
    client = server.client()
    client.copy_named("debian-12-base", "q1")
    client.copy_named("debian-12-base", "q2")
    assert_ims_error(client.copy(client.image_named("debian-12-base")["id"], {"name": "q3"}), "IMG.0015")
    (summary,) = server.introspect("projects")["projects"]
    assert summary["quota_used"] == 12 and summary["image_quota"] == 12
