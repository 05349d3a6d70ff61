"""Bodies over max_request_bytes are refused with 413 before they are parsed."""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus

import pytest

LIMIT = 4096


@pytest.fixture(scope="module")
def small_api(start_api):
    return start_api(IMSREP_MAX_REQUEST_BYTES=str(LIMIT))


def _big_batch() -> bytes:
    items = [{"image_id": str(uuid.uuid4()), "description": "x" * 100} for _ in range(60)]
    body = json.dumps({"items": items}).encode()
    assert len(body) > LIMIT
    return body


def test_declared_length_over_the_limit_is_413(small_api) -> None:
    with small_api.client() as c:
        response = c.post("/v1/batches", content=_big_batch(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {
        "type": "about:blank",
        "title": HTTPStatus.REQUEST_ENTITY_TOO_LARGE.phrase,
        "status": 413,
        "detail": f"request body: must be at most {LIMIT} bytes",
        "instance": "/v1/batches",
    }
    assert small_api.redis().zcard(f"{small_api.prefix}:batches") == 0


def test_streamed_body_is_counted_and_cut_off_at_the_limit(small_api) -> None:
    body = _big_batch()
    chunks = (body[i : i + 512] for i in range(0, len(body), 512))  # a generator: chunked, no Content-Length
    with small_api.client() as c:
        response = c.post("/v1/replications", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "must be at most 4096 bytes" in response.json()["detail"]
    assert small_api.redis().zcard(f"{small_api.prefix}:batches") == 0


def test_bodies_within_the_limit_pass_whether_streamed_or_not(small_api) -> None:
    body = json.dumps({"image_id": str(uuid.uuid4())}).encode()
    with small_api.client() as c:
        assert c.post("/v1/replications", content=body).status_code == 202
        assert c.post("/v1/replications", content=iter([body[:10], body[10:]])).status_code == 202
