"""Records API calls in the audit trail: each state-changing call whatever its outcome, and each read refused for
scope or role (api.audit says which), once its status is known and before its answer is sent, so a client that
has its answer finds the record."""

from __future__ import annotations

import asyncio
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import audit
from api.auditor import Auditor

_ID = re.compile(r"[0-9a-f]{32}")


class AuditCalls:
    """ASGI middleware, inside RequestIds (it records the request's ID) and outside the app's routes."""

    def __init__(self, app: ASGIApp, auditor: Auditor) -> None:
        self.app = app
        self.auditor = auditor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        done = False

        with audit.gathering() as gathered:

            async def sending(message: Message) -> None:
                nonlocal done
                if message["type"] == "http.response.start" and not done:
                    done = True
                    await self._record(scope, message["status"], gathered)
                await send(message)

            try:
                await self.app(scope, receive, sending)
            except Exception:
                if not done:  # answered 500 by the server's last-resort handler, outside this middleware
                    done = True
                    await self._record(scope, 500, gathered)
                raise

    async def _record(self, scope: Scope, status: int, gathered: audit.Facts) -> None:
        route = scope.get("route")
        if scope["method"] not in getattr(route, "methods", ()):
            return  # no route, or one matched by its path alone (a 405)
        action, changes = audit.action_of(route.name)
        state = scope.get("state", {})
        principal = state.get("principal")
        # Not recorded: a call of no /v1 route, and one refused before its principal was known (401).
        if action is None or principal is None or not audit.recorded(changes, status, gathered):
            return
        params = scope.get("path_params", {})
        for name in ("batch_id", "plan_id", "policy_id"):
            if _ID.fullmatch(value := str(params.get(name, ""))) and getattr(gathered, name) is None:
                setattr(gathered, name, value)
        client = scope.get("client")
        call = audit.Call(
            principal=principal.name,
            source=client[0] if client else None,
            request_id=state["request_id"],
            method=scope["method"],
            path=scope["path"],
            action=action,
            status=status,
        )
        now = time.time()
        # The store is synchronous Redis: off the event loop, as the routes' own calls are.
        await asyncio.to_thread(self.auditor.record, audit.record_of(call, gathered, now), now)
