"""The API client: where it finds the API, one readable line per failure, chunked submission by manifest line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.api_client import ApiCallError, ApiClient, ApiTarget, ApiUnreachable, NoApiConfigured, resolve_target
from cli.manifest import ManifestRow, RowError
from cli.processes import free_port
from cli.submission import DEFAULT_CHUNK, Chunk, collect_results, submit_rows
from worker.domain.spec import ItemSpec

IMG = "0b6c3e52-6b0a-4bd4-8a70-4c0ec2f6a9b1"
TARGET = ApiTarget("http://api.test", "tok")


def _client(handler: Any) -> ApiClient:
    return ApiClient(TARGET, transport=httpx.MockTransport(handler))


@pytest.fixture
def no_api_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMSREP_API_URL", "IMSREP_API_TOKEN", "IMSREP_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_target_from_options_then_stack_file(tmp_path: Path, no_api_env: None) -> None:
    # The CLI's options take IMSREP_API_URL/IMSREP_API_TOKEN from the environment (tests/cli/test_commands.py).
    with pytest.raises(NoApiConfigured, match="imsrep up"):
        resolve_target(None, None, tmp_path)
    (tmp_path / "stack.json").write_text(json.dumps({
        "api_url": "http://stack:1/", "api_token": "stack-token", "flower_url": "", "flower_user": "",
        "flower_password": "", "redis_url": "", "state_dir": str(tmp_path), "log_dir": "",
    }))  # fmt: skip
    assert resolve_target(None, None, tmp_path) == ApiTarget("http://stack:1", "stack-token")
    assert resolve_target("http://opt:3", "opt-token", tmp_path) == ApiTarget("http://opt:3", "opt-token")
    # An earlier stack.json has no admin token: the audit trail is asked with the one it has.
    assert resolve_target(None, None, tmp_path, admin=True) == ApiTarget("http://stack:1", "stack-token")


def test_the_audit_trail_takes_the_local_stacks_admin_token(tmp_path: Path, no_api_env: None) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({
        "api_url": "http://stack:1/", "api_token": "operator-token", "admin_token": "admin-token", "flower_url": "",
        "flower_user": "", "flower_password": "", "redis_url": "", "state_dir": str(tmp_path), "log_dir": "",
    }))  # fmt: skip
    assert resolve_target(None, None, tmp_path).token == "operator-token"
    assert resolve_target(None, None, tmp_path, admin=True).token == "admin-token"
    assert resolve_target(None, "given-token", tmp_path, admin=True).token == "given-token"


def test_a_refused_token_names_every_place_a_token_comes_from(no_api_env: None) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "missing or invalid bearer token"})

    target = resolve_target("http://api.test", "t")
    with ApiClient(target, transport=httpx.MockTransport(refuse)) as client, pytest.raises(ApiCallError) as caught:
        client.batch("b")
    assert caught.value.status == 401
    assert str(caught.value) == (
        "API refused GET /v1/batches/b (401): missing or invalid bearer token; the token sent came from --token or "
        "IMSREP_API_TOKEN: give the API's token there, or unset both to use the one imsrep up wrote to "
        ".state/stack.json"
    )


def test_a_url_without_a_token_is_a_usage_error(tmp_path: Path, no_api_env: None) -> None:
    with pytest.raises(NoApiConfigured, match="token"):
        resolve_target("http://api:1", None, tmp_path)


def test_the_token_is_sent_as_a_bearer() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers["Authorization"]
        return httpx.Response(200, json={"batch_id": "b", "total": 0, "counts": {}, "done": True})

    with _client(handler) as client:
        client.batch("b")
    assert seen["auth"] == "Bearer tok"


@pytest.mark.parametrize(
    ("response", "text"),
    [
        (
            httpx.Response(404, json={"title": "Not Found", "status": 404, "detail": "no batch b"}),
            "API refused GET /v1/batches/b (404): no batch b",
        ),
        (httpx.Response(502, text="<html>bad gateway</html>"), "API refused GET /v1/batches/b (502): Bad Gateway"),
        (httpx.Response(200, text="not json"), "API answered GET /v1/batches/b with a body that is not JSON"),
    ],
)
def test_errors_are_one_line(response: httpx.Response, text: str) -> None:
    with _client(lambda request: response) as client, pytest.raises(ApiCallError) as caught:
        client.batch("b")
    assert str(caught.value) == text and "\n" not in str(caught.value)


def test_unreachable_api() -> None:
    port = free_port()  # nothing listens there
    with ApiClient(ApiTarget(f"http://127.0.0.1:{port}", "t")) as client, pytest.raises(ApiUnreachable) as caught:
        client.batch("b")
    assert str(caught.value).startswith(f"API unreachable at http://127.0.0.1:{port}: ")


@pytest.mark.parametrize("source", ["stack.json", "--api"])
def test_an_unreachable_api_says_where_its_address_came_from(tmp_path: Path, no_api_env: None, source: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: imsrep up has stopped
    (tmp_path / "stack.json").write_text(json.dumps({
        "api_url": url, "api_token": "t", "flower_url": "", "flower_user": "", "flower_password": "",
        "redis_url": "", "state_dir": str(tmp_path), "log_dir": str(tmp_path / "logs"),
    }))  # fmt: skip
    target = resolve_target(None if source == "stack.json" else url, None, tmp_path)
    with ApiClient(target) as client, pytest.raises(ApiUnreachable) as caught:
        client.batch("b")
    if source == "stack.json":
        assert f"the address is from {tmp_path / 'stack.json'}: is imsrep up still running?" in str(caught.value)
        assert str(tmp_path / "logs") in str(caught.value)
    else:
        assert "the address came from --api or IMSREP_API_URL" in str(caught.value)


def test_items_follow_the_cursor() -> None:
    pages = {"0": ([{"item_id": "1"}, {"item_id": "2"}], 2), "2": ([{"item_id": "3"}], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        items, next_cursor = pages[request.url.params["cursor"]]
        return httpx.Response(200, json={"batch_id": "b", "items": items, "next_cursor": next_cursor})

    with _client(handler) as client:
        assert [i["item_id"] for i in client.items("b")] == ["1", "2", "3"]


def test_items_with_history_ask_for_it_on_every_page() -> None:
    asked: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("history"))
        next_cursor = 1 if request.url.params["cursor"] == "0" else None
        return httpx.Response(200, json={"batch_id": "b", "items": [{"item_id": "1"}], "next_cursor": next_cursor})

    with _client(handler) as client:
        assert len(list(client.items("b", history=True))) == 2
        list(client.items("b"))
    assert asked == ["true", "true", None, None]


def _rows(n: int, first_line: int = 2) -> list[ManifestRow]:
    return [ManifestRow(first_line + i, ItemSpec(image_id=IMG, name=f"n{i}")) for i in range(n)]


def test_submission_is_chunked_sends_each_rows_line_and_remembers_lines() -> None:
    bodies: list[list[dict]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["items"]
        bodies.append(items)
        ids = [f"{len(bodies)}-{i}" for i in range(len(items))]
        return httpx.Response(202, json={"batch_id": f"batch{len(bodies)}", "accepted": len(items), "item_ids": ids})

    with _client(handler) as client:
        submission = submit_rows(client, _rows(5), chunk_size=2)
    assert [len(b) for b in bodies] == [2, 2, 1]
    assert bodies[0][1] == {"image_id": IMG, "name": "n1", "line": 3}  # the API keeps it on the item
    assert submission.batch_ids == ["batch1", "batch2", "batch3"]
    assert submission.item_lines == {"1-0": 2, "1-1": 3, "2-0": 4, "2-1": 5, "3-0": 6}


def test_items_the_server_refuses_are_reported_by_line_and_the_rest_go_in() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["items"]
        calls.append(len(items))
        if len(calls) == 1:
            detail = [{"index": 1, "field": "account", "rule": "must be one of the configured accounts: default"}]
            return httpx.Response(422, json={"status": 422, "detail": "1 of 3 items are invalid", "errors": detail})
        return httpx.Response(202, json={"batch_id": "b", "accepted": len(items), "item_ids": ["x", "y"]})

    with _client(handler) as client:
        submission = submit_rows(client, _rows(3, first_line=10))
    assert calls == [3, 2]
    assert submission.errors == [RowError(11, "account: must be one of the configured accounts: default", IMG)]
    assert submission.item_lines == {"x": 10, "y": 12}


def test_a_request_level_refusal_is_raised() -> None:
    response = httpx.Response(422, json={"detail": "items: must hold 1 to 2 items", "errors": [
        {"index": None, "field": "items", "rule": "must hold 1 to 2 items (got 3)"}]})  # fmt: skip
    with _client(lambda request: response) as client, pytest.raises(ApiCallError, match="must hold 1 to 2"):
        submit_rows(client, _rows(3))


def test_results_cover_submitted_and_bad_rows() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"batch_id": "b", "accepted": 1, "item_ids": ["x"]})
        item = {"item_id": "x", "image_id": IMG, "state": "succeeded", "new_image_id": "new"}
        return httpx.Response(200, json={"batch_id": "b", "items": [item], "next_cursor": None})

    with _client(handler) as client:
        submission = submit_rows(client, _rows(1, first_line=3))
        results = collect_results(client, submission, [RowError(2, "image_id: bad", "nope")])
    assert [(r.line, r.state, r.new_image_id) for r in results] == [(3, "succeeded", "new"), (2, "invalid", None)]


def test_each_chunk_carries_a_key_from_the_manifest_and_its_position() -> None:
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        n = len(json.loads(request.content)["items"])
        replayed = {"Idempotent-Replayed": "true"} if len(keys) == 1 else {}
        body = {"batch_id": f"b{len(keys)}", "accepted": n, "item_ids": [f"{len(keys)}-{i}" for i in range(n)]}
        return httpx.Response(202, json=body, headers=replayed)

    heard: list[Chunk] = []
    with _client(handler) as client:
        submission = submit_rows(client, _rows(5), chunk_size=2, key_base="m:abc", on_chunk=heard.append)
    assert keys == ["m:abc:2:1", "m:abc:2:2", "m:abc:2:3"]
    assert [(c.number, c.chunks, c.first_line, c.last_line, c.replayed) for c in heard] == [
        (1, 3, 2, 3, True), (2, 3, 4, 5, False), (3, 3, 6, 6, False)]  # fmt: skip
    assert submission.replayed == 2 and submission.chunks == heard


def test_the_rest_of_a_chunk_with_refused_rows_has_a_key_of_its_own() -> None:
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        if len(keys) == 1:
            detail = [{"index": 0, "field": "account", "rule": "must be one of the configured accounts: default"}]
            return httpx.Response(422, json={"detail": "1 of 2 items are invalid", "errors": detail})
        return httpx.Response(202, json={"batch_id": "b", "accepted": 1, "item_ids": ["x"]})

    with _client(handler) as client:
        submit_rows(client, _rows(2), key_base="m:abc")
    assert keys == [f"m:abc:{DEFAULT_CHUNK}:1", f"m:abc:{DEFAULT_CHUNK}:1:rest"]


def test_batches_accepted_before_a_failing_chunk_are_told_at_once() -> None:
    calls: list[int] = []
    told: list[Chunk] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 3:
            return httpx.Response(503, json={"status": 503, "detail": "Redis is unreachable"})
        items = json.loads(request.content)["items"]
        ids = [f"{len(calls)}-{i}" for i in range(len(items))]
        return httpx.Response(202, json={"batch_id": f"b{len(calls)}", "item_ids": ids})

    with _client(handler) as client, pytest.raises(ApiCallError, match="503"):
        submit_rows(client, _rows(6), chunk_size=2, on_chunk=told.append)
    assert [(c.batch_id, c.first_line, c.last_line) for c in told] == [("b1", 2, 3), ("b2", 4, 5)]


def test_a_patient_client_rides_out_transient_failures_of_its_reads() -> None:
    answers = iter([httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(502), None])
    retried: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer or httpx.Response(200, json={"batch_id": "b", "done": True})

    client = ApiClient(TARGET, transport=httpx.MockTransport(handler), patience=30,
                       on_retry=lambda exc, delay: retried.append(delay))  # fmt: skip
    with client:
        assert client.batch("b")["done"] is True
    assert len(retried) == 3 and all(0 <= d <= 10 for d in retried)


def test_reads_give_up_after_their_patience_and_writes_never_retry() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503, json={"detail": "down"})

    with ApiClient(TARGET, transport=httpx.MockTransport(handler), patience=0.2) as client:
        with pytest.raises(ApiCallError, match="down"):
            client.batch("b")
        assert len(calls) >= 1
        calls.clear()
        with pytest.raises(ApiCallError):
            client.submit([_rows(1)[0].spec])
        assert calls == ["POST"]  # a lost answer may hide an accepted batch: never sent twice
    with ApiClient(TARGET, transport=httpx.MockTransport(handler)) as impatient, pytest.raises(ApiCallError):
        impatient.batch("b")


def test_a_refusal_is_not_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404, json={"detail": "no batch b"})

    with ApiClient(TARGET, transport=httpx.MockTransport(handler), patience=30) as client, pytest.raises(ApiCallError):
        client.batch("b")
    assert calls == [1]
