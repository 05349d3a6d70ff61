"""ThreadPools: each thread's requests go over connections of its own, and close() closes every thread's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from worker.ims.transport import ThreadPools


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    opened: list[object]

    def setup(self) -> None:
        self.opened.append(self.client_address)
        super().setup()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[object]]]:
    opened: list[object] = []
    handler = type("Handler", (_Handler,), {"opened": opened})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", opened
    finally:
        httpd.shutdown()
        httpd.server_close()


def _in_thread(fn: object) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_thread_reuses_its_own_connection_and_never_sees_another_threads(server: tuple[str, list[object]]) -> None:
    url, opened = server
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


def test_close_closes_every_threads_connections(server: tuple[str, list[object]]) -> None:
    url, _ = server
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
