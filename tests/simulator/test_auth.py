"""Authentication at the gateway over real HTTP: AK/SK signatures, clock skew, lock-out, project selection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from simulator.errors import AK_LOCKED, AUTH_FAILED

PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
OTHER = "0123456789abcdef0123456789abcdef"


def assert_refused(response: Any, code: str = "APIGW.0301", message: str = AUTH_FAILED, status: int = 401) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {"error_code": code, "error_msg": message, "request_id": response.headers["x-request-id"]}


def corrupt_signature(headers: dict[str, str]) -> None:
    headers["Authorization"] = headers["Authorization"][:-4] + "0000"


@pytest.fixture
def server(sim: Callable[..., Any]) -> Any:
    return sim(project_ids=[PROJECT, OTHER], copy_seconds=30)


def test_signed_requests_pass_and_anything_else_is_refused(server: Any) -> None:
    client = server.client()
    assert client.get("/v2/cloudimages").status_code == 200
    # Query values that need encoding, sent in unsorted order, still verify.
    assert client.get("/v2/cloudimages", query=[("name", "with inner space"), ("__imagetype", "private")]).json() == {
        "images": []
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tamper": lambda h: h.pop("Authorization")}, AUTH_FAILED),
        ({"tamper": corrupt_signature}, AUTH_FAILED),
        ({"tamper": lambda h: h.update({"X-Sdk-Date": "20240101T000000Z"})}, AUTH_FAILED),
        ({"tamper": lambda h: h.update({"Authorization": "Bearer x"})}, AUTH_FAILED),
        ({"date_offset": 16 * 60}, AUTH_FAILED),
        ({"date_offset": -16 * 60}, AUTH_FAILED),
        ({"tamper": lambda h: h.pop("X-Sdk-Date")}, AUTH_FAILED),
    ]
    for kwargs, message in cases:
        assert_refused(client.get("/v2/cloudimages", **kwargs), message=message)
        client.get("/v2/cloudimages")  # a success between failures keeps the AK from locking
    # Changing the body after signing breaks the signature.
    image = client.image_named("centos-7-app")["id"]
    assert_refused(
        client.copy(image, None, raw=b'{"name": "a"}', tamper=lambda h: h.update({"Content-Type": "text/plain"}))
    )
    assert_refused(
        server.client(ak="AKUNKNOWN").get("/v2/cloudimages"),
        message="Incorrect IAM authentication information: Get secretKey failed,ak:AKUNKNOWN,err:ak not exist",
    )
    assert_refused(server.client(sk="SKWRONG").get("/v2/cloudimages"))
    # Skew just inside the 15 minutes is fine.
    assert client.get("/v2/cloudimages", date_offset=14 * 60).status_code == 200


def test_five_failures_in_a_row_lock_the_ak(sim: Callable[..., Any], waiter: Callable[..., Any]) -> None:
    server = sim(lockout_seconds=1.5)
    client, bad = server.client(), server.client(sk="SKWRONG")
    for _ in range(4):
        assert_refused(bad.get("/v2/cloudimages"))
    assert client.get("/v2/cloudimages").status_code == 200  # resets the count
    for _ in range(5):
        assert_refused(bad.get("/v2/cloudimages"))
    assert_refused(client.get("/v2/cloudimages"), message=AK_LOCKED)
    assert server.introspect("health")["locked_access_keys"] == ["AKEXAMPLE"]
    # Tokens are not affected by an AK lock.
    token = server.token().headers["x-subject-token"]
    assert server.client(token=token).get("/v2/cloudimages").status_code == 200
    waiter(lambda: client.get("/v2/cloudimages").status_code == 200, timeout=5, what="the lock to lapse")


def test_x_project_id_selects_the_project(server: Any) -> None:
    mine, theirs = server.client(), server.client(OTHER)
    theirs.copy_named("centos-7-app", "in other")
    assert mine.images(name="in other") == [] and len(theirs.images(name="in other")) == 1
    # Without X-Project-Id the region's default project (the first) is meant, or the one in the path.
    anonymous = server.client(None)
    assert anonymous.images(name="in other") == []
    assert anonymous.post(f"/v1.0/{OTHER}/kms/list-keys", {}).status_code == 200
    assert_refused(server.client("f" * 32).get("/v2/cloudimages"), "APIGW.0310", "The project is unavailable.", 403)
    assert_refused(
        mine.post(f"/v1.0/{OTHER}/kms/list-keys", {}),
        "APIGW.0302",
        "The IAM user is not authorized to access the API.",
        403,
    )
