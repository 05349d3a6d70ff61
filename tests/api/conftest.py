"""API test fixtures: the API as a real uvicorn process, and the service layer, against a real Redis.

Each server or service gets its own key prefix; all use Redis database 9, so the admit messages they send never
reach a worker that another test tier runs on database 0. Helpers are fixtures or methods (test modules cannot
import this file under pytest's importlib mode).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import redis

from api.enqueue import Enqueuer
from api.service import ReplicationService
from cli import services
from cli.processes import ManagedProcess, free_port
from config.settings import Settings, load_settings
from worker.data import DataLayer, RecordStore, open_data_layer

TOKEN = "api-test-token-7f3a9c"
OTHER_TOKEN = "api-second-token-b21e"
PROJECT_ID = "0123456789abcdef0123456789abcdef"
STRANGER = "fedcba9876543210fedcba9876543210"
ACCESS_KEY = "AKAPITESTEXAMPLE"
SECRET_KEY = "SKAPITESTSECRETEXAMPLE"
API_DB = 9


# The guardrails the tests need: the projects they share with, the region they copy to.
GUARDRAILS = {"share_projects": [PROJECT_ID, STRANGER], "copy_regions": ["cn-south-1"]}


def api_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "IMSREP_REDIS_URL": redis_url,
        "IMSREP_KEY_PREFIX": prefix,
        "IMSREP_API_TOKENS": f"{TOKEN},{OTHER_TOKEN}",
        "IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID": PROJECT_ID,
        "IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY": ACCESS_KEY,
        "IMSREP_ACCOUNTS__DEFAULT__SECRET_KEY": SECRET_KEY,
        **{f"IMSREP_ACCOUNTS__DEFAULT__{name.upper()}": ",".join(value) for name, value in GUARDRAILS.items()},
        **extra,
    }


def api_settings(redis_url: str, prefix: str, **overrides: object) -> Settings:
    account = {"project_id": PROJECT_ID, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, **GUARDRAILS}
    accounts = {"default": account}
    values = {"redis_url": redis_url, "key_prefix": prefix, "api_tokens": TOKEN, "accounts": accounts}
    return load_settings(**{**values, **overrides})


def admit_messages(r: redis.Redis) -> list[dict]:
    """The Celery messages waiting in the ``admit`` queue, decoded from kombu's envelope."""
    messages = []
    for raw in r.lrange("admit", 0, -1):
        envelope = json.loads(raw)
        assert envelope["properties"]["body_encoding"] == "base64"
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": args, "kwargs": kwargs, "envelope": envelope})
    return messages


@dataclass
class ApiServer:
    process: ManagedProcess
    url: str
    redis_url: str
    prefix: str
    token: str = TOKEN
    other_token: str = OTHER_TOKEN
    secrets: list[str] = field(default_factory=lambda: [TOKEN, OTHER_TOKEN, ACCESS_KEY, SECRET_KEY])

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def data(self) -> DataLayer:
        return open_data_layer(self.redis_url, self.prefix)

    def store(self) -> RecordStore:
        return self.data().records

    def admits_for(self, batch_id: str) -> list[dict]:
        return [m for m in admit_messages(self.redis()) if m["kwargs"].get("batch_id") == batch_id]

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


StartApi = Callable[..., ApiServer]


@pytest.fixture(scope="module")
def api_redis_url(redis_server) -> str:
    return redis_server.db_url(API_DB)


@pytest.fixture(scope="module")
def start_api(api_redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartApi]:
    """Factory: start an API process (optionally on another Redis, with extra ``IMSREP_*`` variables)."""
    started: list[ManagedProcess] = []
    log_dir = tmp_path_factory.mktemp("api")

    def start(redis_url: str | None = None, wait: bool = True, **extra: str) -> ApiServer:
        url = redis_url or api_redis_url
        prefix = f"api{uuid.uuid4().hex[:8]}"
        port = free_port()
        argv = services.api("127.0.0.1", port).argv
        process = ManagedProcess(f"api-{port}", argv, log_dir / f"api-{port}.log", env=api_env(url, prefix, **extra))
        started.append(process.start())
        base = f"http://127.0.0.1:{port}"
        if wait:
            process.wait_ready(lambda: _answers(base), timeout=30)
        return ApiServer(process, base, url, prefix)

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def api(start_api: StartApi) -> ApiServer:
    """One API server per test module, with its own key prefix."""
    return start_api()


@pytest.fixture
def client(api: ApiServer) -> Iterator[httpx.Client]:
    with api.client() as c:
        yield c


@pytest.fixture
def settings(api_redis_url: str) -> Settings:
    return api_settings(api_redis_url, f"svc{uuid.uuid4().hex[:8]}")


@pytest.fixture
def service(settings: Settings) -> Iterator[ReplicationService]:
    """The service layer on its own (no HTTP), with the real store and enqueuer."""
    data = open_data_layer(settings.redis_url, settings.key_prefix)
    enqueuer = Enqueuer(settings)
    yield ReplicationService(data, enqueuer, settings)
    enqueuer.close()
    data.close()


@pytest.fixture
def admits(api_redis_url: str) -> Callable[[str], list[dict]]:
    """Decoded admit messages for one batch ID."""
    r = redis.Redis.from_url(api_redis_url, decode_responses=True)
    return lambda batch_id: [m for m in admit_messages(r) if m["kwargs"].get("batch_id") == batch_id]
