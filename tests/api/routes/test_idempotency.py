"""Idempotency-Key on POST /v1/batches and /v1/replications over real HTTP: a request sent again is answered,
not stored again; a key reused for another request is a 409; keys expire."""

from __future__ import annotations

import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest


def _items(n: int) -> list[dict]:
    return [{"image_id": str(uuid.uuid4())} for _ in range(n)]


def _batches(api) -> int:
    return api.redis().zcard(f"{api.prefix}:batches")


def test_same_key_and_body_answers_the_first_202_and_stores_nothing(api, client) -> None:
    body = {"items": _items(3), "defaults": {"kms_key": "ims/default"}}
    key = {"Idempotency-Key": f"chunk-{uuid.uuid4()}"}
    first = client.post("/v1/batches", json=body, headers=key)
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    before = _batches(api)
    # The same body with its keys in another order and other spacing is the same request.
    reordered = {"defaults": body["defaults"], "items": body["items"]}
    again = client.post("/v1/batches", json=reordered, headers=key)
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _batches(api) == before
    assert len(api.admits_for(first.json()["batch_id"])) == 1  # nothing sent to the workers twice


def test_same_key_with_another_body_is_409_and_stores_nothing(api, client) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    assert client.post("/v1/batches", json={"items": _items(2)}, headers=key).status_code == 202
    before = _batches(api)
    other = client.post("/v1/batches", json={"items": _items(2)}, headers=key)
    assert other.status_code == 409
    assert other.json()["detail"].startswith("Idempotency-Key: was already used with another request")
    # The same key on the other submission route is another request too.
    single = client.post("/v1/replications", json=_items(1)[0], headers=key)
    assert single.status_code == 409
    assert _batches(api) == before


def test_single_replications_replay_too(api, client) -> None:
    key = {"Idempotency-Key": f"one-{uuid.uuid4()}"}
    item = _items(1)[0]
    first = client.post("/v1/replications", json=item, headers=key)
    again = client.post("/v1/replications", json=item, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"


def test_concurrent_requests_with_one_key_create_one_batch(api, client) -> None:
    body = {"items": _items(50)}
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    before = _batches(api)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: api.client().post("/v1/batches", json=body, headers=key), range(8)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["batch_id"] for a in answers}) == 1
    assert _batches(api) == before + 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7


def test_a_refused_request_does_not_use_up_its_key(api, client) -> None:
    key = {"Idempotency-Key": f"fix-{uuid.uuid4()}"}
    bad = client.post("/v1/batches", json={"items": [{"image_id": "nope"}]}, headers=key)
    assert bad.status_code == 422
    good = client.post("/v1/batches", json={"items": _items(1)}, headers=key)
    assert good.status_code == 202 and "Idempotent-Replayed" not in good.headers


@pytest.mark.parametrize("value", ["", "x" * 256, "has space", "tab\there", "é"])
def test_malformed_keys_are_422_naming_the_header(client, value: str) -> None:
    response = client.post("/v1/batches", json={"items": _items(1)}, headers={"Idempotency-Key": value.encode()})
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["errors"]] == ["Idempotency-Key"]


def test_keys_expire_after_the_configured_time(api, client) -> None:
    key = f"ttl-{uuid.uuid4()}"
    client.post("/v1/batches", json={"items": _items(1)}, headers={"Idempotency-Key": key})
    scoped = f"api-token-1:{key}"  # the principal's own key (IMSREP_API_TOKENS' first token)
    name = f"{api.prefix}:idempotency:{hashlib.sha256(scoped.encode()).hexdigest()}"
    assert 86_000 < api.redis().ttl(name) <= 86_400


def test_one_key_of_two_principals_makes_two_batches(api, client) -> None:
    key = {"Idempotency-Key": f"mine-{uuid.uuid4()}"}
    body = {"items": _items(1)}
    first = client.post("/v1/batches", json=body, headers=key)
    with api.client(api.other_token) as other:
        second = other.post("/v1/batches", json=body, headers=key)
    assert first.status_code == second.status_code == 202, second.text
    assert first.json()["batch_id"] != second.json()["batch_id"]
    assert "idempotent-replayed" not in second.headers


def test_a_key_whose_batch_was_deleted_is_409(api, client) -> None:
    key = {"Idempotency-Key": f"gone-{uuid.uuid4()}"}
    body = {"items": _items(1)}
    batch_id = client.post("/v1/batches", json=body, headers=key).json()["batch_id"]
    api.redis().delete(f"{api.prefix}:batch:{batch_id}")
    again = client.post("/v1/batches", json=body, headers=key)
    assert again.status_code == 409 and "has been deleted" in again.json()["detail"]
