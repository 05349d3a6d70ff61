"""Every request's ID: the client's ``X-Request-ID`` when it is 1-128 visible ASCII characters, else a new one; kept
in the request's state (the audit trail records it) and echoed in the answer's ``X-Request-ID``."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_GIVEN = re.compile(r"[!-~]{1,128}")


def request_id(given: str | None) -> str:
    """``given`` if it is a usable ID, else a new one (a client's odd value is replaced, never refused)."""
    return given if given is not None and _GIVEN.fullmatch(given) else uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: the outermost of ours, so every answer it sees carries the ID, a refusal's included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"x-request-id"), None)
        rid = request_id(None if given is None else given.decode("latin-1"))
        # The state dict the request's handlers and the later middleware share (starlette's request.state).
        scope.setdefault("state", {})["request_id"] = rid

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        await self.app(scope, receive, sending)
