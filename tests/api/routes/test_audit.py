"""The audit trail over real HTTP: what submitting, cancelling, deleting and being refused leave in it, who may read
it (admins), its filters, the request IDs it records, and its JSON log lines (no token in them)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from cli.processes import wait_until

READER = "reader-token-0123456789"
SAM = "submitter-token-sam-0123"  # a submitter of the default account
EVE = "operator-token-eve-0123"  # an operator of the other account only
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
SHARE = "fedcba9876543210fedcba9876543210"  # in the test account's share_projects (tests/api/conftest.py)


@pytest.fixture(scope="module")
def server(start_api):
    principals = {
        "READER": (READER, "reader", "default"),
        "SAM": (SAM, "submitter", "default"),
        "EVE": (EVE, "operator", "other"),
    }
    env = {
        "IMSREP_ACCOUNTS__OTHER__PROJECT_ID": OTHER_PROJECT,
        "IMSREP_ACCOUNTS__OTHER__ACCESS_KEY": "AKOTHEREXAMPLE",
        "IMSREP_ACCOUNTS__OTHER__SECRET_KEY": "SKOTHEREXAMPLESECRET",
    }
    for name, (token, role, accounts) in principals.items():
        env |= {
            f"IMSREP_PRINCIPALS__{name}__TOKEN": token,
            f"IMSREP_PRINCIPALS__{name}__ROLE": role,
            f"IMSREP_PRINCIPALS__{name}__ACCOUNTS": accounts,
        }
    started = start_api(**env)
    started.secrets += [READER, SAM, EVE]
    return started


@pytest.fixture
def admin(server):
    with server.client() as c:
        yield c


def _trail(admin: httpx.Client, **params: object) -> list[dict]:
    response = admin.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()["records"]


def _images(n: int) -> list[dict]:
    return [{"image_id": str(uuid.uuid4())} for _ in range(n)]


def test_a_submit_a_cancel_and_a_delete_are_recorded_and_outlive_the_batch(server, admin) -> None:
    items = _images(3)
    items[0]["kms_key"] = "ims/default"
    items[2]["share_with"] = [SHARE]
    submitted = admin.post("/v1/batches", json={"items": items}, headers={"X-Request-ID": "client-req-1"})
    assert submitted.status_code == 202 and submitted.headers["x-request-id"] == "client-req-1"
    batch_id = submitted.json()["batch_id"]
    cancelled = admin.post(f"/v1/batches/{batch_id}/cancel")
    assert cancelled.status_code == 200
    deleted = admin.delete(f"/v1/batches/{batch_id}")
    assert deleted.status_code == 204 and admin.get(f"/v1/batches/{batch_id}").status_code == 404

    delete, cancel, submit = _trail(admin, batch=batch_id)
    assert submit["action"] == "batch.submit" and submit["request_id"] == "client-req-1"
    assert (submit["outcome"], submit["status"], submit["method"], submit["path"]) == ("ok", 202, "POST", "/v1/batches")
    assert submit["principal"] == "api-token-1" and submit["source"] == "127.0.0.1"
    assert (submit["accounts"], submit["items"], submit["share_targets"]) == (["default"], 3, [SHARE])
    assert submit["unencrypted_copies"] == 2 and submit["selector"] is None and submit["detail"] is None
    assert (cancel["action"], cancel["outcome"], cancel["items"]) == ("batch.cancel", "ok", 3)
    assert cancel["request_id"] == cancelled.headers["x-request-id"] and cancel["accounts"] == ["default"]
    assert (delete["action"], delete["status"], delete["items"], delete["path"]) == (
        "batch.delete", 204, 3, f"/v1/batches/{batch_id}",
    )  # fmt: skip
    assert delete["id"] > cancel["id"] > submit["id"]


def test_refusals_for_role_and_scope_are_recorded_and_a_missing_batch_read_is_not(server, admin) -> None:
    with server.client(READER) as reader:
        refused = reader.post("/v1/batches", json={"items": _images(1)})
    assert refused.status_code == 403
    [record] = _trail(admin, principal="reader", action="batch.submit")
    assert (record["outcome"], record["status"], record["request_id"]) == (
        "forbidden", 403, refused.headers["x-request-id"],
    )  # fmt: skip
    assert "needs the submitter role" in record["detail"]

    with server.client(SAM) as sam:
        outside = sam.post("/v1/batches", json={"items": [{**_images(1)[0], "account": "other"}]})
        assert outside.status_code == 403
        mine = sam.post("/v1/batches", json={"items": _images(2)}).json()["batch_id"]
    [record] = _trail(admin, principal="sam", outcome="forbidden")
    assert (record["accounts"], record["items"], record["unencrypted_copies"]) == (["other"], 1, 1)

    with server.client(EVE) as eve:
        hidden = eve.get(f"/v1/batches/{mine}")
        missing = eve.get(f"/v1/batches/{uuid.uuid4().hex}")
        hidden_cancel = eve.post(f"/v1/batches/{mine}/cancel")
    assert hidden.status_code == missing.status_code == hidden_cancel.status_code == 404
    assert hidden.json()["detail"] == f"batch {mine} not found"  # answered as if it did not exist
    read, cancel = _trail(admin, principal="eve", outcome="not_found")[::-1]  # not the missing batch's read
    assert (read["action"], read["outcome"], read["batch_id"]) == ("batch.read", "not_found", mine)
    assert "out of principal eve's scope" in read["detail"]
    assert (cancel["action"], cancel["outcome"], cancel["status"]) == ("batch.cancel", "not_found", 404)


def test_only_admins_read_the_trail(server, admin) -> None:
    for token in (READER, SAM, EVE):
        with server.client(token) as c:
            response = c.get("/v1/audit")
        assert response.status_code == 403 and "needs the admin role" in response.json()["detail"]
    assert {r["principal"] for r in _trail(admin, action="audit.read", outcome="forbidden")} >= {"reader", "sam", "eve"}


def test_filters_a_cursor_and_bad_filters(server, admin) -> None:
    ids = [admin.post("/v1/replications", json=_images(1)[0]).json()["batch_id"] for _ in range(3)]
    records = _trail(admin, action="replication.submit", principal="api-token-1", outcome="ok", limit=2)
    assert [r["batch_id"] for r in records] == ids[:0:-1]
    page = admin.get("/v1/audit", params={"action": "replication.submit", "limit": 2}).json()
    rest = _trail(admin, action="replication.submit", limit=2, cursor=page["next_cursor"])
    assert [r["batch_id"] for r in rest][:1] == ids[:1]
    first = records[-1]["time"]
    assert [r["batch_id"] for r in _trail(admin, action="replication.submit", since=first)] == ids[:0:-1]
    assert ids[0] in [r["batch_id"] for r in _trail(admin, action="replication.submit", until=first)]
    assert _trail(admin, until="2000-01-01T00:00:00") == []
    assert _trail(admin, batch=uuid.uuid4().hex) == []

    for params, field in [
        ({"action": "batch.explode"}, "action"),
        ({"outcome": "fine"}, "outcome"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "abc"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"batch": "x"}, "batch"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ]:
        response = admin.get("/v1/audit", params=params)
        assert response.status_code == 422, params
        assert [e["field"] for e in response.json()["errors"]] == [field], response.text


def test_a_request_id_is_the_clients_when_usable_else_a_new_one(server, admin) -> None:
    for given, kept in [("a" * 128, True), ("a" * 129, False), ("has space", False), ("é", False), (None, False)]:
        headers = {} if given is None else {"X-Request-ID": given.encode()}
        response = admin.get("/healthz", headers=headers)
        echoed = response.headers["x-request-id"]
        assert echoed == given if kept else (echoed != given and len(echoed) == 32)
    assert httpx.get(f"{server.url}/v1/audit").headers["x-request-id"]  # a 401 carries one too


def test_each_record_is_one_json_log_line_without_any_token(server, admin) -> None:
    response = admin.post("/v1/batches", json={"items": _images(1)}, headers={"X-Request-ID": "log-line-check"})
    assert response.status_code == 202
    wait_until(lambda: "log-line-check" in server.log(), timeout=10, what="the audit log line")
    lines = [line for line in server.log().splitlines() if '"logger": "imsrep.audit"' in line]
    entries = [json.loads(line) for line in lines]
    [entry] = [e for e in entries if e["request_id"] == "log-line-check"]
    assert entry["action"] == "batch.submit" and entry["batch_id"] == response.json()["batch_id"]
    assert not any(secret in line for line in lines for secret in server.secrets)
    assert "Bearer" not in server.log() and "authorization" not in " ".join(lines).lower()


def test_the_audit_route_is_documented(server) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    operation = doc["paths"]["/v1/audit"]["get"]
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {
        "principal", "action", "batch", "outcome", "since", "until", "limit", "cursor",
    }  # fmt: skip
