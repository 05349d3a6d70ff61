"""TLS to Redis through every client: the API, a worker, beat and Flower run a batch over ``rediss://`` against a
Redis that speaks nothing but TLS, its certificate checked against a CA of this test's own; a client that does not
know that CA is refused.

The embedded Valkey is built without TLS, so this runs Debian's redis-server (installed when missing and we are root
with apt-get, as the ops tier installs chromium; skipped otherwise).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from cli.demo import resolve_image_ids, simulator_account
from cli.processes import ManagedProcess, free_port, tcp_open, wait_until
from cli.services import config_value, private_dir, private_file
from cli.stack import DISCARD_STOP_GRACE, LocalStack, StackOptions
from config.settings import load_settings
from tests.support import debian_package, fast_env
from worker.data import RedisTarget, open_data_layer

pytestmark = pytest.mark.integration

IMAGES = ["debian-12-base", "centos-7-app"]


@pytest.fixture(scope="session")
def redis_server_with_tls() -> str:
    if missing := debian_package("redis-server", "redis-server"):
        pytest.skip(missing)
    return "redis-server"


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA, and a certificate it signs for the server at 127.0.0.1: (CA, certificate, key)."""
    private_dir(folder)
    ca, ca_key, cert, key, request = (folder / name for name in ("ca.crt", "ca.key", "server.crt", "server.key", "csr"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=imsrep test CA",
             "-keyout", ca_key, "-out", ca)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", request)
    (folder / "san").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
             "-extfile", folder / "san", "-out", cert)  # fmt: skip
    return ca, cert, key


@pytest.fixture
def tls_redis(redis_server_with_tls: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A Redis on TLS only (no plain port), with a password: its rediss:// URL, the password and the CA."""
    ca, cert, key = _certificates(tmp_path / "tls")
    password = secrets.token_urlsafe(32)
    data = private_dir(tmp_path / "redis")
    config = private_file(data / "redis.conf", f"requirepass {config_value(password)}\n")
    port = free_port()
    argv = [
        redis_server_with_tls, config, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
        "--tls-auth-clients", "no", "--dir", str(data), "--save", "", "--daemonize", "no",
    ]  # fmt: skip
    server = ManagedProcess("redis-tls", argv, tmp_path / "redis-tls.log").start()
    try:
        server.wait_ready(lambda: tcp_open("127.0.0.1", port), timeout=20)
        yield f"rediss://127.0.0.1:{port}/0", password, ca
    finally:
        server.stop(timeout=5)


def test_a_batch_runs_over_tls_and_a_client_without_the_ca_is_refused(tls_redis, tmp_path: Path) -> None:
    url, password, ca = tls_redis
    settings = load_settings(redis_url=url, redis_password=password, redis_tls_ca_file=ca)
    options = StackOptions(
        state_dir=tmp_path / "state",
        use_simulator=True,
        simulator={"copy_seconds": 0.5},
        env=fast_env(),
        stop_grace=DISCARD_STOP_GRACE,
    )
    with LocalStack(options, settings=settings) as local:
        info = local.start()  # the API answers ready once it has seen the worker and beat, over TLS
        ids = resolve_image_ids(simulator_account(info), IMAGES)
        with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_token}"}) as api:
            accepted = api.post("/v1/batches", json={"items": [{"image_id": ids[name]} for name in IMAGES]})
            assert accepted.status_code == 202, accepted.text
            batch = f"/v1/batches/{accepted.json()['batch_id']}"
            wait_until(lambda: api.get(batch).json()["done"], 90, "the batch to end", interval=0.25)
            assert api.get(batch).json()["counts"]["succeeded"] == len(IMAGES)
        # Flower's Broker tab reads the queues over TLS too.
        queues = httpx.get(f"{info.flower_url}/api/queues/length", auth=(info.flower_user, info.flower_password))
        assert queues.status_code == 200 and queues.json()["active_queues"], queues.text
        assert info.redis_url == url and password not in (tmp_path / "state" / "stack.json").read_text()

    trusted = RedisTarget(url, password=password, tls_ca_file=str(ca))
    open_data_layer(trusted, "tls").ping()  # raises unless it answers
    # The system's CAs do not know the test's own: the certificate is refused before a command is sent.
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        open_data_layer(RedisTarget(url, password=password), "tls").ping()
    # Nor does the server talk in clear.
    with pytest.raises(redis.ConnectionError):
        open_data_layer(RedisTarget(url.replace("rediss://", "redis://"), password=password), "tls").ping()
