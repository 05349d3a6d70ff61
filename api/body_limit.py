"""Refuses request bodies over ``max_request_bytes`` before anything parses them."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLarge


class BodySizeLimit:
    """ASGI middleware: a declared Content-Length over the limit is refused at once (the body is never read);
    a body without one (chunked) is counted as it streams, and reading stops with a 413 at the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = PayloadTooLarge(self.max_bytes).response(scope["path"])
            # Connection: close, as the unread body would otherwise be taken for the next request.
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)  # answered by the ProblemError handler
            return message

        await self.app(scope, counted, send)
