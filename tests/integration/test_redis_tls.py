"""TLS to Redis through every client: the API, a worker, beat and Flower run a batch over ``rediss://`` against a
Redis that speaks nothing but TLS, its certificate checked against a CA of this test's own, and again through a
Sentinel on TLS only (``IMSREP_REDIS_SENTINEL_TLS``) that names such a Redis; a client that does not know that CA is
refused.

The embedded Valkey is built without TLS, so this runs Debian's redis-server (installed when missing and we are root
with apt-get, as the ops tier installs chromium; skipped otherwise).
"""

from __future__ import annotations

import dataclasses
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
from worker.data import open_data_layer, redis_target

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


def _tls_server(
    program: str, name: str, folder: Path, certificates: tuple[Path, Path, Path], config: str, *options: str
) -> tuple[ManagedProcess, int]:
    """``program`` on TLS only (no plain port) at a free port, ``config`` its configuration file's text (it holds a
    password), started and answering."""
    ca, cert, key = certificates
    data = private_dir(folder / name)
    port = free_port()
    argv = [
        program, private_file(data / f"{name}.conf", config), "--port", "0", "--tls-port", str(port),
        "--bind", "127.0.0.1", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", "--dir", str(data), "--daemonize", "no", *options,
    ]  # fmt: skip
    server = ManagedProcess(name, argv, folder / f"{name}.log").start()
    try:
        server.wait_ready(lambda: tcp_open("127.0.0.1", port), timeout=20)
    except BaseException:
        server.stop(timeout=5)
        raise
    return server, port


@pytest.fixture(params=["server", "sentinel"])
def tls_redis(request: pytest.FixtureRequest, redis_server_with_tls: str, tmp_path: Path) -> Iterator[dict]:
    """A Redis on TLS only, with a password, reached directly (rediss://) or through a Sentinel on TLS only, with a
    password of its own, that watches it (over TLS: ``tls-replication``): the settings that reach it, and its CA."""
    certificates = _certificates(tmp_path / "tls")
    password, sentinel_password = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    started = []
    try:
        server, port = _tls_server(
            redis_server_with_tls, "redis-tls", tmp_path, certificates, f"requirepass {config_value(password)}\n",
            "--save", "",
        )  # fmt: skip
        started.append(server)
        settings = {"redis_url": f"rediss://127.0.0.1:{port}/0", "redis_password": password}
        if request.param == "sentinel":
            watch = (
                f"requirepass {config_value(sentinel_password)}\ntls-replication yes\n"
                f"sentinel monitor imsrep 127.0.0.1 {port} 1\nsentinel auth-pass imsrep {config_value(password)}\n"
            )
            sentinel, sentinel_port = _tls_server(
                redis_server_with_tls, "sentinel-tls", tmp_path, certificates, watch, "--sentinel"
            )
            started.append(sentinel)
            settings.update(
                redis_url=f"sentinel://127.0.0.1:{sentinel_port}/0", redis_sentinel_master="imsrep",
                redis_sentinel_password=sentinel_password, redis_sentinel_tls=True,
            )  # fmt: skip
        yield {**settings, "redis_tls_ca_file": certificates[0]}
    finally:
        for process in reversed(started):
            process.stop(timeout=5)


def test_a_batch_runs_over_tls_and_a_client_without_the_ca_is_refused(tls_redis: dict, tmp_path: Path) -> None:
    settings = load_settings(**tls_redis)
    url, password = settings.redis_url, tls_redis["redis_password"]
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

    trusted = redis_target(settings)
    open_data_layer(trusted, "tls").ping()  # raises unless it answers
    # The system's CAs do not know the test's own: the certificate is refused before a command is sent (the
    # Sentinel's: then no Sentinel answers to name the master).
    with pytest.raises(redis.ConnectionError, match="certificate verify failed|too few Sentinels answered"):
        open_data_layer(dataclasses.replace(trusted, tls_ca_file=None), "tls").ping()
    # Nor does the server (or the Sentinel) talk in clear.
    clear = dataclasses.replace(trusted, url=url.replace("rediss://", "redis://"), sentinel_tls=False)
    with pytest.raises(redis.ConnectionError):
        open_data_layer(clear, "tls").ping()
