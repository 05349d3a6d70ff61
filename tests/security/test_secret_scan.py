"""No credential leaks: a real batch through the stack (AK/SK, an IAM password account and one whose password IAM
refuses), then every Redis key and value (Celery messages decoded, unacked ones included), every file the stack
wrote (logs, Flower's and beat's state, Redis' AOF), Flower's task list and the API's answers are searched for every
configured secret and for any IAM token.

IAM tokens the simulator issued are not listed by its ``/_sim/`` views, so they are found by their shape instead: an
IAM token is a long opaque string starting ``MII`` (real ones too), which no ID, name or message of ours resembles.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from cli.demo import resolve_image_ids, simulator_account
from cli.processes import wait_until
from cli.redis_auth import SENTINEL_PASSWORD_FILE, SERVER_PASSWORD_FILE
from cli.stack import FLOWER_PASSWORD_FILE, STACK_FILE, LocalStack

pytestmark = pytest.mark.integration

IAM_TOKEN = re.compile(rb"MII[A-Za-z0-9+/=_-]{100,}")
OK_IMAGES = ["centos-7-app", "debian-12-base", "centos-6-legacy"]


def _secrets(stack) -> dict[str, bytes]:
    info = stack.info
    named = {
        "access key": info.simulator_access_key,
        "secret key": info.simulator_secret_key,
        "IAM password": stack.iam_password,
        "refused IAM password": stack.wrong_iam_password,
        "API token": info.api_token,
        "Flower password": info.flower_password,
        "Redis password": stack.local.passwords.server,
        "Sentinel password": stack.local.passwords.sentinel,
    }
    assert all(value and len(value) >= 8 for value in named.values())
    return {name: value.encode() for name, value in named.items()}


def _with_temporary(stack, secrets: dict[str, bytes]) -> dict[str, bytes]:
    """``secrets`` and every temporary AK/SK and security token the simulator's metadata service handed out so far."""
    issued = httpx.get(f"{stack.info.simulator_url}/_sim/temporary-credentials", timeout=10).json()["credentials"]
    found = dict(secrets)
    for n, credential in enumerate(issued):
        found |= {
            f"temporary access key {n}": credential["access"].encode(),
            f"temporary secret key {n}": credential["secret"].encode(),
            f"security token {n}": credential["securitytoken"].encode(),
        }
    return found


def _leaks(where: str, data: bytes, secrets: dict[str, bytes]) -> list[str]:
    found = [f"{name} in {where}" for name, value in secrets.items() if value in data]
    return found + [f"an IAM token in {where}" for _ in IAM_TOKEN.finditer(data)][:1]


# Redis ---------------------------------------------------------------------------------------------------------


def _celery_bodies(value: bytes) -> Iterator[bytes]:
    """Bodies of the kombu envelopes inside a value (a queued message, or an unacked ``[envelope, ...]``)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return
    stack = [parsed]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("properties", {}).get("body_encoding") == "base64":
                yield base64.b64decode(node["body"])
            stack.extend(node.values())


def _redis_values(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key).decode()
    if kind == "string":
        return [client.get(key) or b""]
    if kind == "hash":
        return [part for pair in client.hgetall(key).items() for part in pair]
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return list(client.smembers(key))
    if kind == "zset":
        return client.zrange(key, 0, -1)
    if kind == "stream":
        return [part for _, fields in client.xrange(key) for pair in fields.items() for part in pair]
    return []


def scan_redis(local: LocalStack, secrets: dict[str, bytes]) -> tuple[list[str], int]:
    """Leaks in every key and value of every database of the master; and how many Celery messages were decoded and
    read."""
    leaks, messages = [], 0
    master = {"port": local.port(local.redis_master() or "redis"), "password": local.passwords.server}
    base = redis.Redis(**master)
    databases = [int(db.removeprefix("db")) for db in base.info("keyspace")]
    for db in databases:
        client = redis.Redis(**master, db=db)
        for key in client.scan_iter(count=1000):
            where = f"Redis db {db} key {key[:80]!r}"
            leaks += _leaks(where, key, secrets)
            for value in _redis_values(client, key):
                leaks += _leaks(where, value, secrets)
                for body in _celery_bodies(value):
                    messages += 1
                    leaks += _leaks(f"{where} (a Celery message body)", body, secrets)
    return leaks, messages


# Files, Flower, the API ----------------------------------------------------------------------------------------


# Files that hold secrets by design, each only its owner can read: stack.json (the API token, the Flower password),
# the Redis passwords' files, Flower's and the servers' and Sentinels' configurations.
HOLDERS = {
    STACK_FILE, SERVER_PASSWORD_FILE, SENTINEL_PASSWORD_FILE, FLOWER_PASSWORD_FILE, "redis.conf", "sentinel.conf"
}  # fmt: skip


def scan_files(state_dir: Path, secrets: dict[str, bytes]) -> tuple[list[str], list[Path]]:
    """Every file the stack wrote but those that hold secrets by design."""
    files = [p for p in state_dir.rglob("*") if p.is_file() and p.name not in HOLDERS]
    leaks = [leak for path in files for leak in _leaks(str(path.relative_to(state_dir)), path.read_bytes(), secrets)]
    return leaks, files


def scan_http(responses: Iterable[httpx.Response], secrets: dict[str, bytes]) -> list[str]:
    return [leak for r in responses for leak in _leaks(f"{r.request.method} {r.request.url.path}", r.content, secrets)]


# The test ------------------------------------------------------------------------------------------------------


def test_no_secret_reaches_redis_tasks_files_flower_or_the_api(secret_stack) -> None:
    info, secrets = secret_stack.info, _secrets(secret_stack)
    ids = resolve_image_ids(simulator_account(info), OK_IMAGES)
    items = [{"image_id": ids[name], "name": f"scan-{name}"} for name in OK_IMAGES]
    items += [{"image_id": ids[name], "name": f"scan-iam-{name}", "account": "iam"} for name in OK_IMAGES[:2]]
    items += [{"image_id": ids["centos-7-app"], "name": "scan-badiam", "account": "badiam"}]
    items += [{"image_id": ids[name], "name": f"scan-sts-{name}", "account": "sts"} for name in OK_IMAGES]
    api = httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_token}"}, timeout=30)
    accepted = api.post("/v1/batches", json={"items": items})
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batch_id"]

    # Mid-run, while messages are queued or held unacked by the worker (polls wait on a countdown).
    wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["counts"].get("replicating", 0) > 0, 60, "copies")
    leaks, messages_mid = scan_redis(secret_stack.local, _with_temporary(secret_stack, secrets))
    wait_until(lambda: api.get(f"/v1/batches/{batch_id}").json()["done"], 90, f"batch {batch_id} done")

    # The batch did what it should, through every kind of credential.
    results = api.get(f"/v1/batches/{batch_id}/items", params={"limit": 100})
    by_account = {(i["account"], i["state"]) for i in results.json()["items"]}
    assert by_account == {
        ("default", "succeeded"), ("sts", "succeeded"), ("iam", "succeeded"), ("badiam", "failed")
    }, by_account  # fmt: skip
    stats = httpx.get(f"{info.simulator_url}/_sim/stats").json()
    assert stats["by_endpoint"]["tokens"].get("201", 0) >= 1  # the iam account really used IAM tokens
    assert stats["by_endpoint"]["securitykey"].get("200", 0) >= 1  # and sts the metadata service's credentials
    secrets = _with_temporary(secret_stack, secrets)

    more, messages_end = scan_redis(secret_stack.local, secrets)
    leaks += more
    assert messages_mid + messages_end > 0, "no Celery message was decoded: the scan did not look inside the queues"

    file_leaks, files = scan_files(Path(info.state_dir), secrets)
    leaks += file_leaks
    names = {p.name for p in files}
    logs = {"api", "worker", "beat", "flower", "simulator", "redis", "redis-replica-1", "sentinel-1", "sentinel-3"}
    assert {f"{name}.log" for name in logs} <= names, names
    # The scanner finds what is there: the holders hold what they are for, and only that (stack.json no password).
    state = Path(info.state_dir)
    held = {
        STACK_FILE: {"API token", "Flower password", "access key", "secret key"},  # the simulator's, to sign with
        SERVER_PASSWORD_FILE: {"Redis password"},
        SENTINEL_PASSWORD_FILE: {"Sentinel password"},
        FLOWER_PASSWORD_FILE: {"Flower password"},
        "redis/redis.conf": {"Redis password"},
        "sentinel-2/sentinel.conf": {"Redis password", "Sentinel password"},
    }
    for path, what in held.items():
        assert set(_leaks(path, (state / path).read_bytes(), secrets)) == {f"{name} in {path}" for name in what}

    flower_auth = (info.flower_user, info.flower_password)
    flower = [
        httpx.get(f"{info.flower_url}{path}", auth=flower_auth, params=params, timeout=30)
        for path, params in [("/api/tasks", {"limit": 100_000}), ("/api/workers", {}), ("/tasks", {}), ("/metrics", {})]
    ]
    assert all(r.status_code == 200 for r in flower)
    assert '"replication.submit"' in flower[0].text
    answers = [
        results,
        api.get(f"/v1/batches/{batch_id}"),
        *(api.get(f"/v1/replications/{item_id}") for item_id in accepted.json()["item_ids"]),
        httpx.get(f"{info.api_url}/metrics"),
        httpx.get(f"{info.api_url}/readyz"),
        # Refusals must not echo what was sent: a near-miss token, the real one with the wrong scheme.
        httpx.get(f"{info.api_url}/v1/batches/{batch_id}", headers={"Authorization": f"Bearer {info.api_token}x"}),
        httpx.get(f"{info.api_url}/v1/batches/{batch_id}", headers={"Authorization": f"Basic {info.api_token}"}),
    ]
    assert [r.status_code for r in answers[-2:]] == [401, 401]
    leaks += scan_http([*flower, *answers], secrets)
    api.close()

    assert not leaks, "\n".join(sorted(set(leaks)))
