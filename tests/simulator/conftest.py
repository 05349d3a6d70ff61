"""Helpers for the simulator tests: a signer written here from Huawei's signing guide, a small HTTP client, a
``sim`` fixture that starts real simulator processes (through the shared ``start_simulator`` fixture, or with
several regions through ``regions_sim``), and ``app_sim``, the application in this process on a clock the test
moves.

The signer is deliberately independent of ``simulator.signing``: the simulator's verifier is checked against a
second implementation, and both against the published vectors (docs/simulator.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from cli import services
from cli.processes import ManagedProcess, free_port
from cli.stack import not_ready_reason
from simulator.app import create_app
from simulator.config import RegionSpec, SimConfig
from simulator.context import Simulator

with warnings.catch_warnings():
    # Starlette would rather see httpx2; the httpx the project pins works the same for these tests.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _q(text: str) -> str:
    return quote(text, safe="~")


def sign(
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
) -> str:
    """The ``Authorization`` value for a request; ``headers`` must hold X-Sdk-Date; names with ``_`` are skipped."""
    lowered = {name.lower(): value.strip() for name, value in {**headers, "Host": host}.items() if "_" not in name}
    names = sorted(lowered)
    uri = "/".join(_q(part) for part in path.split("/"))
    uri += "" if uri.endswith("/") else "/"
    canonical = "\n".join(
        [
            method,
            uri,
            "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(query)),
            "".join(f"{n}:{lowered[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"SDK-HMAC-SHA256\n{lowered['x-sdk-date']}\n{digest}"
    signature = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(names)}, Signature={signature}"


def sdk_date(offset_seconds: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset_seconds, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def wait_for(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll until ``check`` returns something truthy; fail at the deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class SimClient:
    """Signs with AK/SK (``project`` in X-Project-Id when given; a temporary AK/SK's ``security_token`` in
    X-Security-Token, signed like the SDK signs it) or sends ``token`` as X-Auth-Token."""

    def __init__(
        self,
        base_url: str,
        project: str | None,
        *,
        ak: str = "AKEXAMPLE",
        sk: str = "SKEXAMPLE",
        token: str | None = None,
        security_token: str | None = None,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.host = base_url.split("://", 1)[1]
        self.project = project
        self.ak, self.sk, self.token, self.security_token = ak, sk, token, security_token
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        date_offset: float = 0.0,
        tamper: Callable[[dict[str, str]], None] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        query = query or []
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        if self.token is not None:
            headers = {"X-Auth-Token": self.token, "Content-Type": "application/json"}
        else:
            headers = {"X-Sdk-Date": sdk_date(date_offset)}
            if method == "POST" or data:
                headers["Content-Type"] = "application/json;charset=UTF-8"
            if self.project:
                headers["X-Project-Id"] = self.project
            if self.security_token is not None:
                headers["X-Security-Token"] = self.security_token
            headers["Authorization"] = sign(method, self.host, path, query, headers, data, self.ak, self.sk)
        if tamper is not None:
            tamper(headers)
        url = path + ("?" + urlencode(query, quote_via=quote, safe="~") if query else "")
        extra = {} if timeout is None else {"timeout": timeout}
        return self.http.request(method, url, content=data, headers=headers, **extra)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, body=body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, body=body, **kwargs)

    def delete(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, body=body, **kwargs)

    def images(self, **filters: str) -> list[dict[str, Any]]:
        response = self.get("/v2/cloudimages", query=list(filters.items()))
        assert response.status_code == 200, response.text
        return response.json()["images"]

    def image_named(self, name: str) -> dict[str, Any]:
        (image,) = self.images(name=name)
        return image

    def copy(self, image_id: str, body: Any, version: str = "v1", **kwargs: Any) -> httpx.Response:
        return self.post(f"/{version}/cloudimages/{image_id}/copy", body, **kwargs)

    def copy_named(self, source: str, name: str, **extra: Any) -> str:
        """Copy the image called ``source``; return the job ID (the copy must be accepted)."""
        response = self.copy(self.image_named(source)["id"], {"name": name, **extra})
        assert response.status_code == 200, response.text
        return response.json()["job_id"]

    def cross_region(self, image_id: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.post(f"/v1/cloudimages/{image_id}/cross_region_copy", body, **kwargs)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/{self.project}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def keys(self) -> dict[str, dict[str, Any]]:
        """Key details by alias."""
        response = self.post(f"/v1.0/{self.project}/kms/list-keys", {})
        assert response.status_code == 200, response.text
        return {key["key_alias"]: key for key in response.json()["key_details"]}


class Controls:
    """``/_sim/`` calls through ``self.plain``, an unsigned client of the simulator."""

    plain: httpx.Client

    def introspect(self, path: str, **params: str) -> Any:
        response = self.plain.get(f"/_sim/{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def control(self, path: str, body: Any) -> httpx.Response:
        return self.plain.post(f"/_sim/{path}", json=body)


class Sim(Controls):
    """A running simulator process and clients for it."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = server.url
        self._clients: list[SimClient] = []
        self.plain = httpx.Client(base_url=server.url, timeout=10.0)

    @property
    def project(self) -> str:
        return self.server.project_id

    def client(self, project: str | None = "", **kwargs: Any) -> SimClient:
        client = SimClient(self.url, self.project if project == "" else project, **kwargs)
        self._clients.append(client)
        return client

    def token(self, project_name: str = "cn-north-4", password: str = "demo-password") -> httpx.Response:
        return self.plain.post("/v3/auth/tokens", json=password_body(project_name, password))

    def close(self) -> None:
        for client in self._clients:
            client.http.close()
        self.plain.close()


def password_body(
    project_name: str | None = "cn-north-4", password: str = "demo-password", project_id: str | None = None
) -> dict[str, Any]:
    """IAM's body for a project-scoped password token (https://support.huaweicloud.com/intl/en-us/api-iam/iam_30_0001.html)."""
    project = {"id": project_id} if project_id else {"name": project_name}
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "demo-user", "password": password, "domain": {"name": "demo-domain"}}},
            },
            "scope": {"project": project},
        }
    }


@pytest.fixture
def sim(start_simulator: Callable[..., Any]) -> Iterator[Callable[..., Sim]]:
    """Factory: ``sim(copy_seconds=0.5, seed=1, project_ids=[...])`` starts a simulator process."""
    started: list[Sim] = []

    def start(**options: Any) -> Sim:
        options.setdefault("seed", 1)
        options.setdefault("log_level", "warning")
        handle = Sim(start_simulator(**options))
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.close()


@pytest.fixture
def signer() -> Callable[..., str]:
    return sign


@pytest.fixture
def waiter() -> Callable[..., Any]:
    return wait_for


@pytest.fixture
def token_body() -> Callable[..., dict[str, Any]]:
    return password_body


class Clock:
    """A clock the test moves: ``app_sim`` servers read it instead of the wall clock."""

    def __init__(self) -> None:
        # It starts at the wall clock: clients sign with it and the signature check allows 15 minutes of skew.
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class AppSim(Controls):
    """The simulator's application in this process (no server, no sockets), on a ``Clock``.

    Requests address a region as a client of the real service would, by host name (``ims.<region>.…``); the
    clients sign for that host.
    """

    def __init__(self, config: SimConfig) -> None:
        self.clock = Clock()
        self.sim = Simulator(config, clock=self.clock)
        self.app = create_app(config, self.sim)
        self.config = config
        self._http: list[TestClient] = []
        self.plain = self._test_client(f"http://ims.{config.region}.myhuaweicloud.com")

    def _test_client(self, base_url: str) -> TestClient:
        client = TestClient(self.app, base_url=base_url, raise_server_exceptions=True)
        self._http.append(client)
        return client

    @property
    def project(self) -> str:
        return self.config.project_ids[0]

    def project_of(self, region: str, index: int = 0) -> str:
        return self.sim.state.regions[region][index].id

    def client(self, project: str | None = "", region: str | None = None, **kwargs: Any) -> SimClient:
        region = region or self.config.region
        base_url = f"http://ims.{region}.myhuaweicloud.com"
        project = self.project_of(region) if project == "" else project
        return SimClient(base_url, project, http=self._test_client(base_url), **kwargs)

    def close(self) -> None:
        for client in self._http:
            client.close()


SOUTH = "cn-south-1"
SOUTH_PROJECT = "5b1e3c6a9f0d4e2b8a7c6d5e4f3a2b1c"


@pytest.fixture
def app_sim() -> Iterator[Callable[..., AppSim]]:
    """Factory: ``app_sim(copy_seconds=10)`` (any ``SimConfig`` field); ``regions=True`` adds cn-south-1 with
    project ``SOUTH_PROJECT`` (and ``regions=[RegionSpec…]`` any others)."""
    made: list[AppSim] = []

    def make(regions: bool | list[RegionSpec] = False, **config: Any) -> AppSim:
        config.setdefault("seed", 1)
        if regions is True:
            regions = [RegionSpec(SOUTH, (SOUTH_PROJECT,), 8781)]
        handle = AppSim(SimConfig(extra_regions=tuple(regions or ()), **config))
        made.append(handle)
        return handle

    yield make
    for handle in made:
        handle.close()


class RegionsSim(Sim):
    """A real simulator process serving several regions, each on a port of its own (from ``/_sim/regions``)."""

    def __init__(self, process: ManagedProcess, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self._clients = []
        self.plain = httpx.Client(base_url=self.url, timeout=10.0)
        self.regions = self.introspect("regions")

    @property
    def project(self) -> str:
        return next(iter(self.regions.values()))["project_id"]

    def region_client(self, region: str, project: str | None = "", **kwargs: Any) -> SimClient:
        view = self.regions[region]
        client = SimClient(view["endpoint"], view["project_id"] if project == "" else project, **kwargs)
        self._clients.append(client)
        return client


def _regions_factory(base: Path) -> tuple[Callable[..., RegionsSim], Callable[[], None]]:
    started: list[tuple[ManagedProcess, RegionsSim]] = []

    def start(regions: list[str], *args: str) -> RegionsSim:
        port = free_port()
        service = services.simulator(
            "127.0.0.1",
            port,
            (),
            home_region=regions[0],
            regions=dict.fromkeys(regions[1:], 0),
            seed=1,
            log_level="warning",
        )
        log = base / f"simulator-{port}.log"
        proc = ManagedProcess(f"simulator-{port}", [*service.argv, *args], log, env=service.env).start()
        started.append((proc, None))  # type: ignore[arg-type]  # stopped even if it never answers
        proc.wait_ready(lambda: not_ready_reason(f"http://127.0.0.1:{port}/_sim/health") is None, timeout=30)
        handle = RegionsSim(proc, port)
        started[-1] = (proc, handle)
        return handle

    def stop() -> None:
        for proc, handle in started:
            if handle is not None:
                handle.close()
            proc.stop()

    return start, stop


@pytest.fixture
def regions_sim(tmp_path: Path) -> Iterator[Callable[..., RegionsSim]]:
    """Factory: ``regions_sim(["cn-north-4", "cn-south-1"], "--copy-seconds", "1")`` starts a process serving
    those regions, the first on a free port and the others on ports the process picks."""
    start, stop = _regions_factory(tmp_path)
    yield start
    stop()


@pytest.fixture(scope="module")
def module_regions_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RegionsSim]]:
    """``regions_sim`` for a whole module, when its tests can share one process."""
    start, stop = _regions_factory(tmp_path_factory.mktemp("regions"))
    yield start
    stop()
