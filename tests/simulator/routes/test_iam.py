"""IAM tokens: issue (201, X-Subject-Token), use on IMS and KMS, renewal after revoke or expiry."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

OTHER = "0123456789abcdef0123456789abcdef"
PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
TOKEN_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def test_password_token_scoped_by_region_name(sim: Callable[..., Any]) -> None:
    server = sim(project_ids=[PROJECT, OTHER])
    response = server.token("cn-north-4")
    assert response.status_code == 201, response.text
    token = response.headers["x-subject-token"]
    assert token.startswith("MII") and len(token) > 100
    body = response.json()["token"]
    assert body["project"]["id"] == PROJECT and body["project"]["name"] == "cn-north-4"
    assert body["methods"] == ["password"]
    assert re.fullmatch(TOKEN_TIME, body["expires_at"]) and re.fullmatch(TOKEN_TIME, body["issued_at"])
    lifetime = datetime.strptime(body["expires_at"], FORMAT) - datetime.strptime(body["issued_at"], FORMAT)
    assert lifetime == timedelta(hours=24)
    client = server.client(token=token)
    assert len(client.images()) == 10
    assert server.client(PROJECT, token=token).keys()["ims/default"]["default_key_flag"] == "1"


def test_scope_by_project_id_and_isolation(sim: Callable[..., Any], token_body: Callable[..., Any]) -> None:
    server = sim(project_ids=[PROJECT, OTHER], copy_seconds=30)
    response = server.plain.post("/v3/auth/tokens", json=token_body(project_id=OTHER))
    assert response.status_code == 201 and response.json()["token"]["project"]["id"] == OTHER
    other = server.client(OTHER, token=response.headers["x-subject-token"])
    other.copy_named("centos-7-app", "made with a token")
    assert server.client().images(name="made with a token") == []
    # A token of one project cannot name another in the path.
    denied = other.post(f"/v1.0/{PROJECT}/kms/list-keys", {})
    assert denied.status_code == 403 and denied.json()["error_code"] == "APIGW.0302"
    by_name = server.token("cn-north-4_2")
    assert by_name.json()["token"]["project"]["id"] == OTHER
    assert "catalog" in by_name.json()["token"]
    no_catalog = server.plain.post("/v3/auth/tokens?nocatalog=true", json=token_body())
    assert "catalog" not in no_catalog.json()["token"]


def test_bad_credentials_and_bodies(sim: Callable[..., Any], token_body: Callable[..., Any]) -> None:
    server = sim()
    wrong = server.token(password="guess")
    assert wrong.status_code == 401 and "x-subject-token" not in wrong.headers
    assert wrong.json() == {
        "error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}
    }
    assert server.token("no-such-project").status_code == 400
    assert server.plain.post("/v3/auth/tokens", content=b"{").status_code == 400
    no_scope = token_body()
    del no_scope["auth"]["scope"]
    assert server.plain.post("/v3/auth/tokens", json=no_scope).status_code == 400


def test_revoked_and_expired_tokens_need_renewal(sim: Callable[..., Any], waiter: Callable[..., Any]) -> None:
    server = sim(token_ttl=1.0)
    first = server.token().headers["x-subject-token"]
    client = server.client(token=first)
    assert client.get("/v2/cloudimages").status_code == 200
    expired = waiter(lambda: (r := client.get("/v2/cloudimages")).status_code == 401 and r, what="expiry")
    assert expired.json()["error_code"] == "APIGW.0307" and expired.json()["request_id"]
    second = server.token().headers["x-subject-token"]
    assert second != first
    client.token = second
    assert client.get("/v2/cloudimages").status_code == 200
    assert server.control("tokens/revoke", {"token": second}).json() == {"revoked": 1}
    assert client.get("/v2/cloudimages").json()["error_code"] == "APIGW.0307"


def test_revoke_all_and_unknown_tokens(sim: Callable[..., Any]) -> None:
    server = sim()
    tokens = [server.token().headers["x-subject-token"] for _ in range(2)]
    assert server.control("tokens/revoke", {}).json() == {"revoked": 2}
    for token in tokens:
        assert server.client(token=token).get("/v2/cloudimages").json()["error_code"] == "APIGW.0307"
    unknown = server.client(token="MIInot-a-token").get("/v2/cloudimages")
    assert unknown.status_code == 401 and unknown.json()["error_code"] == "APIGW.0301"


def test_project_list_by_name_under_aksk_and_token(app_sim: Callable[..., Any]) -> None:
    """KeystoneListProjects, as the official SDK calls it to find a region's project ID: ``GET /v3/projects?name=``
    signed with AK/SK and no X-Project-Id; IAM is global, so any region's endpoint answers for every region."""
    server = app_sim(regions=True, project_ids=(PROJECT, OTHER))
    unscoped = server.client(project=None)
    south = unscoped.get("/v3/projects", query=[("name", "cn-south-1")])
    assert south.status_code == 200, south.text
    (project,) = south.json()["projects"]
    assert project["id"] == server.project_of("cn-south-1") and project["name"] == "cn-south-1"
    assert project["enabled"] is True and project["domain_id"] == server.sim.domain_id
    second = unscoped.get("/v3/projects", query=[("name", "cn-north-4_2")]).json()["projects"]
    assert [p["id"] for p in second] == [OTHER]
    assert unscoped.get("/v3/projects", query=[("name", "nowhere")]).json()["projects"] == []
    assert len(unscoped.get("/v3/projects").json()["projects"]) == 3
    token = server.plain.post(
        "/v3/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "demo-user", "password": "demo-password", "domain": {"name": "demo-domain"}}
                    },
                },
                "scope": {"project": {"name": "cn-north-4"}},
            }
        },
    ).headers["x-subject-token"]
    by_token = server.client(project=None, token=token).get("/v3/projects", query=[("name", "cn-south-1")])
    assert [p["id"] for p in by_token.json()["projects"]] == [server.project_of("cn-south-1")]
    refused = server.client(project=None, sk="wrong").get("/v3/projects")
    assert refused.status_code == 401 and refused.json()["error_code"] == "APIGW.0301"
