"""The app as a whole: start-up checks, the OpenAPI document, no secret echoed, and no input causing a 500."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from api.app import create_app
from cli.processes import wait_until


def test_refuses_to_start_without_principals(start_api) -> None:
    server = start_api(wait=False, IMSREP_API_TOKENS="")
    wait_until(lambda: not server.process.running(), timeout=30, what="the API to exit")
    assert server.process.proc.returncode != 0
    assert "no API principals configured: set IMSREP_API_TOKENS (admin tokens)" in server.log()


def test_starts_and_takes_submissions_for_accounts_without_credentials(start_api) -> None:
    """The API needs an account's name, project and limits, never its credentials: only the workers call the cloud."""
    server = start_api(
        IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY="",  # empty: not set
        IMSREP_ACCOUNTS__DEFAULT__SECRET_KEY="",
        IMSREP_ACCOUNTS__SOUTH__PROJECT_ID="fedcba9876543210fedcba9876543210",
        IMSREP_ACCOUNTS__SOUTH__REGION="cn-south-1",
    )
    items = [{"image_id": str(uuid.uuid4()), "account": "south"}, {"image_id": str(uuid.uuid4())}]
    with server.client() as client:
        response = client.post("/v1/batches", json={"items": items})
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        assert client.get(f"/v1/batches/{batch_id}").json()["counts"]["accepted"] == 2
        names = {account["name"] for account in client.get("/v1/accounts").json()["accounts"]}
    assert names == {"default", "south"}
    assert len(server.admits_for(batch_id)) == 1
    assert {item.account for item in server.store().batch_items(batch_id)[0]} == {"default", "south"}


def test_openapi_document_is_complete_and_resolvable(api) -> None:
    doc = httpx.get(f"{api.url}/openapi.json").json()
    paths = doc["paths"]
    for path in (
        "/v1/batches",
        "/v1/batches/{batch_id}",
        "/v1/batches/{batch_id}/items",
        "/v1/batches/{batch_id}/cancel",
        "/v1/batches/{batch_id}/retry",
        "/v1/replications",
        "/v1/replications/{item_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
        for operation in paths[path].values():
            assert operation["summary"], path
    submit = paths["/v1/batches"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchRequest"
    }
    assert submit["requestBody"]["content"]["application/json"]["examples"]
    refused = submit["responses"]["422"]["content"]["application/problem+json"]
    assert refused["schema"]["$ref"].endswith("/ProblemDetails")
    for path, operations in paths.items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "500" in statuses, (path, method)  # any route may fail internally
            if path.startswith("/v1"):
                assert {"401", "422", "503"} <= statuses, (path, method)
            if "{batch_id}" in path or "{item_id}" in path or "{policy_id}" in path:
                assert "404" in statuses, (path, method)
            if "requestBody" in operation:
                assert "413" in statuses, (path, method)
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert set(response["content"]) == {"application/problem+json"}, (path, method, status)
                if status == "202":
                    assert "Location" in response["headers"], (path, method)
    problem = doc["components"]["schemas"]["ProblemDetails"]["properties"]
    assert set(problem) == {"type", "title", "status", "detail", "instance", "errors"}
    assert {"HTTPBearer"} <= set(doc["components"]["securitySchemes"])
    schemas = doc["components"]["schemas"]
    assert schemas["BatchRequest"]["properties"]["items"]["items"] == {"$ref": "#/components/schemas/ItemSpec"}

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "swagger" in httpx.get(f"{api.url}/docs").text.lower()


def test_secrets_are_never_echoed_or_logged(api) -> None:
    wrong = "Bearer not-the-token-" + uuid.uuid4().hex
    answers = [
        httpx.get(f"{api.url}/v1/batches/{uuid.uuid4().hex}", headers={"Authorization": wrong}),
        httpx.post(f"{api.url}/v1/batches", headers={"Authorization": wrong}, json={"items": []}),
    ]
    with api.client() as c:
        answers.append(c.post("/v1/batches", json={"items": [{"image_id": "x"}]}))
        answers.append(c.get(f"/v1/batches/{uuid.uuid4().hex}"))
        answers.append(c.get("/v1/batches/bad"))
    log = api.log()
    for answer in answers:
        assert answer.status_code in (401, 404, 422)
        for secret in [*api.secrets, wrong.split()[1]]:
            assert secret not in answer.text
    for secret in [*api.secrets, wrong.split()[1]]:
        assert secret not in log


GARBAGE_BODIES = [
    b"null",
    b"0",
    b"1e999",
    b"NaN",
    b'"\\u0000"',
    b"[]",
    b"{}",
    b'{"items": null}',
    b'{"items": [null]}',
    b'{"items": [[]]}',
    b'{"items": [{}]}',
    b'{"items": [{"image_id": null}]}',
    b'{"items": [{"image_id": []}]}',
    b'{"items": [{"image_id": "' + b"a" * 3000 + b'"}]}',
    b'{"defaults": [], "items": [1]}',
    b'{"selector": null}',
    b'{"selector": []}',
    b'{"selector": {"kms_key": 5, "created_after": "yesterday"}}',
    b'{"selector": {}, "template": {"name": "{x}", "tags": {"": 1}}}',
    b'{"selector": {"min_size_gb": -1}, "template": []}',
    b'{"items": [{"image_id": "b6f1a7de-37d4-4f2c-9a0e-3c7e1d2f5a81", "name": "\\u00e9\\u4e2d"}]}',
    b'{"items": [{"image_id": "b6f1a7de-37d4-4f2c-9a0e-3c7e1d2f5a81", "description": "\\u0000\\ud83d\\ude00"}]}',
    b'{"items": [{"\\ud800": 1}]}',
    b'{"items": [{"image_id": "x", "account": 5}]}',
    b"{" * 10_000,
    b'{"items": [' + b",".join([b'{"image_id": "x"}'] * 5000) + b"]}",
    b"\x00\x01\x02",
    "ü".encode("latin-1"),
    json.dumps({"items": [{"image_id": str(uuid.uuid4()), "kms_key": "k" * 300}]}).encode(),
    json.dumps({"image_id": str(uuid.uuid4()), "enterprise_project_id": "0"}).encode(),
]


@pytest.mark.parametrize("path", ["/v1/batches", "/v1/replications"])
def test_no_body_produces_a_500(api, path) -> None:
    with api.client() as c:
        for body in GARBAGE_BODIES:
            for content_type in ("application/json", "text/plain"):
                response = c.post(path, content=body, headers={"Content-Type": content_type})
                assert response.status_code < 500, (body[:80], response.text[:300])
                assert response.status_code == 202 or response.json()["detail"]


def test_no_path_or_query_produces_a_500(api) -> None:
    odd = ["%00", "%ff", "..%2f..%2fetc", "a" * 5000, "0" * 32 + "%0a", " ", "%F0%9F%98%80"]
    with api.client() as c:
        batch = c.post("/v1/replications", json={"image_id": str(uuid.uuid4())}).json()["batch_id"]
        for value in odd:
            for path in (f"/v1/batches/{value}", f"/v1/replications/{value}", f"/v1/batches/{value}/cancel"):
                assert c.get(path).status_code < 500, path
                assert c.post(path).status_code < 500, path
            for param in ("state", "limit", "cursor"):
                assert c.get(f"/v1/batches/{batch}/items?{param}={value}").status_code < 500, (param, value)


def test_an_unexpected_error_is_a_logged_500_that_reveals_nothing(settings, caplog) -> None:
    """The last-resort handler, provoked from inside (no client input reaches it: see the tests above)."""

    class BrokenService:
        def batch(self, who: object, batch_id: str) -> None:
            raise RuntimeError("internal detail that must stay in the log")

    app = create_app(settings)
    app.state.service = BrokenService()
    token = settings.api_tokens[0].get_secret_value()

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            return await c.get(f"/v1/batches/{'0' * 32}", headers={"Authorization": f"Bearer {token}"})

    response = asyncio.run(get())
    assert response.status_code == 500
    assert response.json()["detail"] == "internal error; it has been logged" and response.json()["status"] == 500
    assert "internal detail that must stay in the log" in caplog.text


def test_json_logs_are_one_object_a_line_uvicorn_included(start_api) -> None:
    server = start_api(IMSREP_LOG_FORMAT="json")
    with server.client() as c:
        assert c.get(f"/v1/batches/{uuid.uuid4().hex}").status_code == 404
    wait_until(lambda: "GET /v1/batches/" in server.log(), timeout=10, what="the access log line")
    entries = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert access and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["logger"] == "uvicorn.error" and "Started server process" in e["message"] for e in entries)
