"""Timed outages (``POST /_sim/outage``): for a while every IMS, KMS and IAM request of a region fails in one way,
then the outage ends by itself.

- ``error``: an immediate 5xx from the gateway, the request not processed;
- ``hang``: no answer until the outage is over (past any client's read timeout), then a 504, not processed;
- ``refuse``: the connection is reset when a request arrives, before anything is read (see ``refusing_protocol``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

MODES = ("error", "hang", "refuse")
HANG_POLL_SECONDS = 0.25
REQUEST_HEAD = re.compile(rb"[A-Z]+ (?P<path>\S+) HTTP/1\.[01]\r\n")
HOST_HEADER = re.compile(rb"\r\nhost:[ \t]*(?P<host>[^\r\n]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Outage:
    mode: str
    until: float  # clock time at which it ends


class Outages:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_region: dict[str, Outage] = {}

    def start(self, mode: str, seconds: float, regions: Iterable[str]) -> None:
        """``seconds`` 0 ends the outage in those regions."""
        until = self._clock() + seconds
        for region in regions:
            if seconds > 0:
                self._by_region[region] = Outage(mode, until)
            else:
                self._by_region.pop(region, None)

    def active(self, region: str, now: float | None = None) -> Outage | None:
        outage = self._by_region.get(region)
        if outage is None:
            return None
        if (self._clock() if now is None else now) >= outage.until:
            del self._by_region[region]
            return None
        return outage

    async def wait_over(self, region: str) -> None:
        while (outage := self.active(region)) is not None:
            await asyncio.sleep(min(HANG_POLL_SECONDS, max(0.0, outage.until - self._clock())))

    def view(self) -> dict[str, Any]:
        now = self._clock()
        return {
            region: {"mode": outage.mode, "remaining_seconds": round(outage.until - now, 3)}
            for region in list(self._by_region)
            if (outage := self.active(region, now)) is not None
        }


def refusing_protocol(sim: Any) -> type[AutoHTTPProtocol]:
    """uvicorn's HTTP protocol, resetting the connection when a request (not ``/_sim/``) starts during a
    ``refuse`` outage of its region: the client sees a connection reset, never an answer."""

    class RefusingProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        def data_received(self, data: bytes) -> None:
            head = REQUEST_HEAD.match(data)
            if head is not None and not head["path"].startswith(b"/_sim/"):
                host = HOST_HEADER.search(data)
                local = self.transport.get_extra_info("sockname")
                port = local[1] if isinstance(local, tuple) else None
                region = sim.region_of(host["host"].decode("latin-1").strip() if host else None, port)
                outage = sim.outages.active(region)
                if outage is not None and outage.mode == "refuse":
                    sim.faults.count("outage_refuse")
                    _reset(self.transport)
                    return
            super().data_received(data)

    return RefusingProtocol


def _reset(transport: Any) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: closing sends a RST, as a refused connection would, instead of an orderly FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
