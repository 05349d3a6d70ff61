"""A connection pool per thread under one ``httpx.Client``.

httpcore's pool looks at every connection it holds on each request and again when the response closes: an idle
one costs a ``poll`` of its socket (``has_expired``). One pool shared by a process's 50 step threads holds up to 50
connections when the cloud is far away, and a request then cost 1.37 ms of CPU against 0.39 ms with a pool of its
own (800 requests in a row from one thread to a local uvicorn, 49 other threads' connections idle; docs/performance.md,
"Latency"). A step thread makes one request at a time, so its own pool keeps a connection per endpoint it calls.
"""

from __future__ import annotations

import ssl
import threading
import weakref

import httpcore  # noqa: F401 - see below
import httpx

# httpx imports httpcore when it builds a transport, which here is a step thread's first request: in each pool
# process, at a batch's start, with that process's other step threads waiting on the import lock (on the `projects`
# bench, the last project's first copies began about 0.1 s later). Imported with this module, it is loaded before
# the worker forks its pool processes.

# A thread calls its account's IMS endpoint, and KMS, IAM or another region's IMS now and then.
_PER_THREAD = httpx.Limits(max_connections=8, max_keepalive_connections=8)


class ThreadPools(httpx.BaseTransport):
    """Sends each request on the calling thread's own ``httpx.HTTPTransport``. They share one TLS context: loading
    the CA bundle costs about 17 ms of CPU, once per process rather than once per thread."""

    def __init__(self) -> None:
        self._tls: ssl.SSLContext = httpx.create_ssl_context()
        self._local = threading.local()
        self._lock = threading.Lock()
        # Weak: a thread's transport goes with its thread (step threads live as long as the process).
        self._all: weakref.WeakSet[httpx.HTTPTransport] = weakref.WeakSet()

    def _own(self) -> httpx.HTTPTransport:
        transport: httpx.HTTPTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = httpx.HTTPTransport(verify=self._tls, limits=_PER_THREAD)
            self._local.transport = transport
            with self._lock:
                self._all.add(transport)
        return transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._own().handle_request(request)

    def close(self) -> None:
        with self._lock:
            transports, self._all = list(self._all), weakref.WeakSet()
        for transport in transports:
            transport.close()
