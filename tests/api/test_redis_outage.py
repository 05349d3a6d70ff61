"""Redis going away: 503 with the reason, nothing half-written, and service resumes without restarting the API.

Each test runs its own Redis (own port and data directory), so stopping it disturbs nobody else.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import redis

from cli.processes import wait_until
from cli.stack import LocalStack, StackOptions
from tests.support import password_url


@pytest.fixture
def own_redis(tmp_path):
    with LocalStack(StackOptions(state_dir=tmp_path)) as stack:
        stack.start_redis()
        yield stack, password_url(stack)


def _batch(n: int) -> dict:
    return {"items": [{"image_id": str(uuid.uuid4())} for _ in range(n)]}


def _records(r: redis.Redis, prefix: str) -> tuple[set[str], set[str]]:
    """Batch IDs and item IDs present in Redis, from the keys themselves."""
    batches = {k.split(":")[2] for k in r.scan_iter(f"{prefix}:batch:*") if k.count(":") == 2}
    items = {k.split(":")[2] for k in r.scan_iter(f"{prefix}:item:*") if k.count(":") == 2}
    return batches, items


def test_redis_down_is_503_and_back_up_works_without_restart(start_api, own_redis) -> None:
    stack, url = own_redis
    port = stack.port("redis")
    api = start_api(redis_url=url)
    accepted: dict[str, list[str]] = {}
    with api.client() as c:
        first = c.post("/v1/batches", json=_batch(3)).json()
        accepted[first["batch_id"]] = first["item_ids"]

        stack.stop_service("redis")
        calls = [
            ("POST", "/v1/batches", _batch(50)),
            ("POST", "/v1/replications", {"image_id": str(uuid.uuid4())}),
            ("GET", f"/v1/batches/{first['batch_id']}", None),
            ("GET", f"/v1/batches/{first['batch_id']}/items", None),
            ("GET", f"/v1/replications/{first['item_ids'][0]}", None),
            ("POST", f"/v1/batches/{first['batch_id']}/cancel", None),
            ("POST", f"/v1/batches/{first['batch_id']}/retry", None),
        ]
        for method, path, body in calls:
            response = c.request(method, path, json=body)
            assert response.status_code == 503, (path, response.text)
            # Unavailable, not where Redis is, nor how to log in to it.
            assert response.json()["detail"] == "Redis is unavailable", path
            assert not [s for s in (str(port), "127.0.0.1", stack.passwords.server) if s in response.text], path
        not_ready = httpx.get(f"{api.url}/readyz")
        # Anyone may call /readyz: it says Redis is down, not where Redis is.
        assert not_ready.status_code == 503 and not_ready.json()["detail"] == "Redis is unavailable"
        assert str(port) not in not_ready.text and "127.0.0.1" not in not_ready.text
        assert httpx.get(f"{api.url}/healthz").status_code == 200
        scrape = httpx.get(f"{api.url}/metrics")
        assert scrape.status_code == 200 and "imsrep_redis_up 0.0" in scrape.text

        stack.restart("redis")  # same port and data: the AOF brings data back
        answers: list[httpx.Response] = []
        wait_until(
            lambda: answers.append(c.post("/v1/batches", json=_batch(2))) or answers[-1].status_code == 202,
            timeout=20,
            what="the API to store a batch after Redis came back",
        )
        assert {a.status_code for a in answers} <= {202, 503}
        for answer in answers:
            if answer.status_code == 202:
                accepted[answer.json()["batch_id"]] = answer.json()["item_ids"]
        assert c.get(f"/v1/batches/{first['batch_id']}").json()["total"] == 3

        r = redis.Redis.from_url(url, decode_responses=True)
        batches, items = _records(r, api.prefix)
        assert batches == set(accepted)  # exactly the batches answered 202; none from the refused calls
        assert items == {i for ids in accepted.values() for i in ids}
        assert r.zcard(f"{api.prefix}:batches") == len(accepted)
        assert len(api.admits_for(first["batch_id"])) == 1  # the queue survived the restart too
        assert len(api.admits_for(answers[-1].json()["batch_id"])) == 1
    assert "internal error" not in api.log() and "Traceback" not in api.log()


def test_redis_refusing_writes_is_503_and_stores_nothing(start_api, own_redis) -> None:
    _stack, url = own_redis
    api = start_api(redis_url=url)
    r = redis.Redis.from_url(url, decode_responses=True)
    with api.client() as c:
        r.config_set("maxmemory", 1)  # noeviction: every write is refused as out of memory
        try:
            refused = c.post("/v1/batches", json=_batch(20))
        finally:
            r.config_set("maxmemory", 0)
        assert refused.status_code == 503
        assert refused.json()["detail"].startswith("Redis could not serve the request: ")
        assert "maxmemory" in refused.json()["detail"] and api.prefix not in refused.json()["detail"]
        assert _records(r, api.prefix) == (set(), set())
        accepted = c.post("/v1/batches", json=_batch(2))
        assert accepted.status_code == 202
        assert _records(r, api.prefix)[0] == {accepted.json()["batch_id"]}


def test_a_principals_request_limit_lets_reads_through_while_redis_refuses_writes(start_api, own_redis) -> None:
    """The bucket is a write: at Redis's memory limit it cannot be kept, and a read Redis can serve still goes."""
    _stack, url = own_redis
    token = "limited-reader-token-01"
    api = start_api(redis_url=url, IMSREP_PRINCIPALS__READER__TOKEN=token, IMSREP_PRINCIPALS__READER__ACCOUNTS="*")
    r = redis.Redis.from_url(url, decode_responses=True)
    with api.client(token) as c:
        r.config_set("maxmemory", 1)
        try:
            answer = c.get("/v1/batches")
        finally:
            r.config_set("maxmemory", 0)
        assert answer.status_code == 200, answer.text
    assert "Redis refuses writes" in api.log() and "request limit of principal reader" in api.log()
