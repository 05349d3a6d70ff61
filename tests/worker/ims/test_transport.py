"""ThreadPools: each thread's requests go over connections of its own, kept between its calls, and close() closes
every thread's."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from worker.ims.client import shared_http
from worker.ims.transport import ThreadPools


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    opened: list[object]
    before_answer: list[Callable[[], object]]

    def setup(self) -> None:
        self.opened.append(self.client_address)
        super().setup()

    def do_GET(self) -> None:
        for hook in self.before_answer:
            hook()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class _Server:
    url: str
    opened: list[object]  # the connections it accepted
    before_answer: list[Callable[[], object]]  # called in each request's thread before it answers


@pytest.fixture
def server() -> Iterator[_Server]:
    found = _Server("", [], [])
    handler = type("Handler", (_Handler,), {"opened": found.opened, "before_answer": found.before_answer})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    found.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        yield found
    finally:
        httpd.shutdown()
        httpd.server_close()


def _in_thread(fn: object) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_thread_reuses_its_own_connection_and_never_sees_another_threads(server: _Server) -> None:
    url, opened = server.url, server.opened
    pools = ThreadPools()
    client = httpx.Client(transport=pools)
    seen: dict[str, int] = {}

    def calls(name: str) -> None:
        for _ in range(3):
            assert client.get(url).status_code == 200
        # the pool this thread sends on holds its one connection, not the other threads'
        seen[name] = len(pools._own()._pool.connections)

    for name in ("a", "b", "c"):
        _in_thread(lambda name=name: calls(name))
    calls("main")
    assert seen == {"a": 1, "b": 1, "c": 1, "main": 1}
    assert len(opened) == 4  # one per thread, each kept for its three calls
    client.close()


def test_close_closes_every_threads_connections(server: _Server) -> None:
    url = server.url
    pools = ThreadPools()
    client = httpx.Client(transport=pools)
    holders: list[httpx.HTTPTransport] = []
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        assert client.get(url).status_code == 200
        holders.append(pools._own())
        held.set()
        release.wait(timeout=10)  # alive until closed, so its transport is not collected with it

    thread = threading.Thread(target=hold)
    thread.start()
    assert client.get(url).status_code == 200
    holders.append(pools._own())
    assert held.wait(timeout=10)
    client.close()
    release.set()
    thread.join(timeout=10)
    assert [len(t._pool.connections) for t in holders] == [0, 0]


def test_the_shared_client_keeps_a_connection_for_each_step_that_waits_on_the_cloud_at_once(server: _Server) -> None:
    # 32 calls at once, twice: the second round finds every connection of the first still open (one pool keeping 20
    # idle would make 12 new ones, each a TCP and TLS handshake: round trips 150-300 ms long).
    server.before_answer.append(threading.Barrier(32, timeout=10).wait)  # every call of a round is open at once
    http = shared_http(connect_timeout=5.0, read_timeout=10.0)
    try:
        with ThreadPoolExecutor(32) as pool:
            for _ in range(2):
                assert [r.status_code for r in pool.map(lambda _: http.get(server.url), range(32))] == [200] * 32
    finally:
        http.close()
    assert len(server.opened) == 32


def test_the_worker_app_loads_httpcore_before_the_pool_forks() -> None:
    # httpx imports httpcore when a transport is built, on a step thread's first request: in every pool process at
    # a batch's start, its other step threads waiting on the import lock. Celery's parent imports the app module
    # before it forks, so what that module loads each pool process has from the start.
    code = "import sys, worker.celery_app; print('httpcore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True", out.stderr
