"""CLI fixtures: the API as a real uvicorn process (the command line ``LocalStack`` runs) on the session's Redis.

No worker runs here: submitted items stay ``accepted``, which is what the exit-code tests need. A database of its
own keeps the queued messages away from workers of other test tiers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli import services
from cli.processes import ManagedProcess, free_port
from cli.stack import not_ready_reason
from worker.data import DataLayer, RecordStore, open_data_layer

TOKEN = "cli-test-token-4d8e1a"
CLI_DB = 8


@dataclass
class ApiServer:
    url: str
    token: str
    redis_url: str
    prefix: str

    def data(self) -> DataLayer:
        """The API's data layer, to put things where a worker would have."""
        return open_data_layer(self.redis_url, self.prefix)

    def store(self) -> RecordStore:
        """The API's records, to put an item where a worker would have."""
        return self.data().records


@pytest.fixture(scope="session")
def api_server(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    port = free_port()
    redis_url, prefix = redis_server.db_url(CLI_DB), f"cli{uuid.uuid4().hex[:8]}"
    env = {
        "IMSREP_REDIS_URL": redis_url,
        "IMSREP_KEY_PREFIX": prefix,
        "IMSREP_API_TOKENS": TOKEN,
        "IMSREP_ACCOUNTS__DEFAULT__PROJECT_ID": uuid.uuid4().hex,
        "IMSREP_ACCOUNTS__DEFAULT__ACCESS_KEY": "AKCLITEST",
        "IMSREP_ACCOUNTS__DEFAULT__SECRET_KEY": "SKCLITESTSECRET",
    }
    log = Path(tmp_path_factory.mktemp("cli-api")) / "api.log"
    proc = ManagedProcess("api", services.api("127.0.0.1", port).argv, log, env=env).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready(lambda: not_ready_reason(f"{url}/healthz") is None, timeout=30)
        yield ApiServer(url, TOKEN, redis_url, prefix)
    finally:
        proc.stop()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No API from the environment or a stack.json: each test says which API it means."""
    monkeypatch.delenv("IMSREP_API_URL", raising=False)
    monkeypatch.delenv("IMSREP_API_TOKEN", raising=False)
    monkeypatch.setenv("IMSREP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
