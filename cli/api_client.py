"""A small client of the submission API, and where the CLI finds the API's address and token.

Every failure becomes an ``ApiCallError`` whose text is one readable line (the ``detail`` of the API's problem
document when it sent one), so the CLI never shows a traceback for a refused request or a server that is down. A
client with ``patience`` rides out transient failures of its reads (no answer, a 5xx) with backoff for that long.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from cli.stack import STACK_FILE, read_stack_file
from config.settings import ENV_PREFIX, Settings
from worker.domain.spec import ItemSpec

URL_ENV = f"{ENV_PREFIX}API_URL"
TOKEN_ENV = f"{ENV_PREFIX}API_TOKEN"
ITEMS_PAGE = 1000
IDEMPOTENCY_KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


class ApiCallError(Exception):
    """A call to the API failed; ``str()`` is one line, ``problems`` the per-field ``errors`` of a 422."""

    def __init__(self, message: str, status: int | None = None, problems: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.problems = problems or []

    @property
    def transient(self) -> bool:
        """Worth trying again: the server erred or is overloaded, not the request."""
        return self.status is not None and (self.status >= 500 or self.status == 429)


class ApiUnreachable(ApiCallError):
    """No answer at all: wrong address, server down, network trouble."""

    @property
    def transient(self) -> bool:
        return True


class NoApiConfigured(ValueError):
    pass


class UnknownAccount(ValueError):
    """An account the API has no configuration for was asked for by name."""


@dataclass(frozen=True)
class ApiTarget:
    url: str
    token: str
    # Where the token came from and how to give another: what a 401 adds to its message (never the token itself).
    token_hint: str = field(default="", compare=False)
    # Where the address came from and what to do when nothing answers there: what "unreachable" adds.
    address_hint: str = field(default="", compare=False)


def state_dir_default() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}STATE_DIR") or Settings.model_fields["state_dir"].default)


def resolve_target(
    url: str | None, token: str | None, state_dir: Path | None = None, *, admin: bool = False
) -> ApiTarget:
    """The given address and token (the CLI's options, or ``IMSREP_API_URL``/``IMSREP_API_TOKEN``), else the
    running local stack's stack.json: its operator's token, or with ``admin`` its admin's (the audit trail)."""
    stack_file = (state_dir or state_dir_default()) / STACK_FILE
    if token:
        hint = f"the token sent came from --token or {TOKEN_ENV}: give the API's token there, or unset both to use "
        hint += f"the one imsrep up wrote to {stack_file}"
    else:
        hint = f"the token sent is the one imsrep up wrote to {stack_file}: give the API's with --token or {TOKEN_ENV}"
    where = f"the address came from --api or {URL_ENV}: start the API there, or unset both to use imsrep up's"
    if not (url and token):
        stack = read_stack_file(stack_file.parent)
        if stack is not None:
            if not url:
                where = f"the address is from {stack_file}: is imsrep up still running? (its logs: {stack.log_dir})"
            url, token = url or stack.api_url, token or (admin and stack.admin_token) or stack.api_token
    if not url:
        raise NoApiConfigured(f"no API address: pass --api, set {URL_ENV}, or start the local stack (imsrep up)")
    if not token:
        raise NoApiConfigured(f"no API token: pass --token or set {TOKEN_ENV}")
    return ApiTarget(url.rstrip("/"), token, hint, where)


# Backoff of retried reads: exponential from the first delay, capped, with full jitter.
RETRY_FIRST, RETRY_CAP = 0.5, 10.0
OnRetry = Callable[[ApiCallError, float], None]


class ApiClient:
    def __init__(
        self,
        target: ApiTarget,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        *,
        patience: float = 0.0,
        on_retry: OnRetry | None = None,
    ):
        """``patience``: how long reads keep retrying a transient failure before it is raised (0: never retried;
        writes are never retried, as a lost answer may hide an accepted batch); ``on_retry`` hears each retry."""
        self.target = target
        self.patience = patience
        self.on_retry = on_retry
        self._http = httpx.Client(
            base_url=target.url,
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def submit(
        self, specs: Sequence[ItemSpec], key: str | None = None, batch: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """``POST /v1/batches``: ``{batch_id, accepted, item_ids, replayed}``; ``replayed`` is true when the
        ``Idempotency-Key`` ``key`` had already been accepted (the answer is the first request's). ``batch``: the
        batch's own fields (``label``, ``priority``)."""
        body: dict[str, Any] = {"items": [spec.model_dump(exclude_none=True) for spec in specs], **(batch or {})}
        return self.post_batch(body, key)

    def post_batch(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """``POST /v1/batches`` with any body (a selector, a plan); ``replayed`` as for ``submit``."""
        headers = {IDEMPOTENCY_KEY: key} if key else {}
        response = self._send("POST", "/v1/batches", json=body, headers=headers)
        return {**_json("POST", "/v1/batches", response), "replayed": response.headers.get(REPLAYED) == "true"}

    def batch(self, batch_id: str) -> dict[str, Any]:
        """``GET /v1/batches/{id}``: ``{batch_id, total, counts, done, ...}``."""
        return self._call("GET", f"/v1/batches/{_segment(batch_id)}")

    def items(self, batch_id: str, *, history: bool = False) -> Iterator[dict[str, Any]]:
        """Every item of a batch, page by page; with ``history`` each item's transitions too (read with its page)."""
        cursor: int | None = 0
        while cursor is not None:
            params: dict[str, Any] = {"cursor": cursor, "limit": ITEMS_PAGE, **({"history": "true"} if history else {})}
            page = self._call("GET", f"/v1/batches/{_segment(batch_id)}/items", params=params)
            yield from page["items"]
            cursor = page.get("next_cursor")

    def item(self, item_id: str) -> dict[str, Any]:
        """``GET /v1/replications/{id}``: one item with its history and, once it ended short, its next step."""
        return self._call("GET", f"/v1/replications/{_segment(item_id)}")

    def batches(
        self, *, state: str | None = None, label: str | None = None, limit: int = 50
    ) -> Iterator[dict[str, Any]]:
        """Batches newest first, at most ``limit``, page by page."""
        cursor: str | None = None
        left = limit
        while left > 0:
            params: dict[str, Any] = {"limit": min(left, 500), "state": state, "label": label, "cursor": cursor}
            page = self._call("GET", "/v1/batches", params={k: v for k, v in params.items() if v is not None})
            yield from page["batches"]
            left -= len(page["batches"])
            cursor = page.get("next_cursor")
            if cursor is None:
                return

    def plan(self, plan_id: str, cursor: int = 0, limit: int = ITEMS_PAGE) -> dict[str, Any]:
        """``GET /v1/plans/{id}``: its state, summary once done, and a page of verdicts."""
        return self._call("GET", f"/v1/plans/{_segment(plan_id)}", params={"cursor": cursor, "limit": limit})

    def plan_verdicts(self, plan_id: str) -> Iterator[dict[str, Any]]:
        """Every verdict of a plan, page by page."""
        cursor: int | None = 0
        while cursor is not None:
            page = self.plan(plan_id, cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")

    def delete(self, batch_id: str) -> None:
        self._send("DELETE", f"/v1/batches/{_segment(batch_id)}")

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/batches/{_segment(batch_id)}/cancel")

    def retry(self, batch_id: str, *, cancelled: bool = False) -> dict[str, Any]:
        params = {"cancelled": "true"} if cancelled else None
        return self._call("POST", f"/v1/batches/{_segment(batch_id)}/retry", params=params)

    def accounts(self, name: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/accounts``: each account's credentials, quota, slots, outage and line, per mode; with ``name``
        only that account's (``UnknownAccount`` when the API has no account of that name)."""
        accounts = self._call("GET", "/v1/accounts")["accounts"]
        if name is None:
            return accounts
        if shown := [a for a in accounts if a["name"] == name]:
            return shown
        configured = ", ".join(sorted({a["name"] for a in accounts})) or "none"
        raise UnknownAccount(f"--account {name}: no such account is configured; the configured ones: {configured}")

    def check_accounts(self, account: str | None = None) -> list[str]:
        """``POST /v1/accounts/check``: the accounts a worker now checks with one signed read each."""
        params = {"account": account} if account else None
        return self._call("POST", "/v1/accounts/check", params=params)["accounts"]

    def audit(self, *, limit: int = 50, **filters: str | None) -> Iterator[dict[str, Any]]:
        """``GET /v1/audit`` (admins only): records newest first, at most ``limit``, page by page; ``filters`` are
        its query parameters (``principal``, ``action``, ``batch``, ``outcome``, ``since``, ``until``)."""
        cursor: str | None = None
        left = limit
        given = {name: value for name, value in filters.items() if value is not None}
        while left > 0:
            params: dict[str, Any] = {**given, "limit": min(left, 500), **({"cursor": cursor} if cursor else {})}
            page = self._call("GET", "/v1/audit", params=params)
            yield from page["records"][:left]
            left -= len(page["records"])
            cursor = page.get("next_cursor")
            if cursor is None:
                return

    # Standing policies ---------------------------------------------------------------------------------------------
    def policies(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/policies")["policies"]

    def policy(self, policy_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/policies/{_segment(policy_id)}")

    def create_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/policies", json=body)

    def update_policy(self, policy_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"/v1/policies/{_segment(policy_id)}", json=body)

    def policy_action(self, policy_id: str, action: str) -> dict[str, Any]:
        """``POST /v1/policies/{id}/<action>``: ``pause``, ``resume``, ``run`` or ``plan``."""
        return self._call("POST", f"/v1/policies/{_segment(policy_id)}/{action}")

    def delete_policy(self, policy_id: str) -> None:
        self._send("DELETE", f"/v1/policies/{_segment(policy_id)}")

    def policy_runs(self, policy_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/v1/policies/{_segment(policy_id)}/runs")["runs"]

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _json(method, path, self._send(method, path, **kwargs))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A successful answer; every failure as an ``ApiCallError``. Reads retry a transient failure with backoff
        for ``patience`` seconds; writes never do."""
        if method != "GET" or self.patience <= 0:
            return self._once(method, path, **kwargs)
        deadline = time.monotonic() + self.patience
        attempt = 0
        while True:
            try:
                return self._once(method, path, **kwargs)
            except ApiCallError as exc:
                delay = random.uniform(0, min(RETRY_CAP, RETRY_FIRST * 2**attempt))  # noqa: S311 - jitter
                if not exc.transient or time.monotonic() + delay > deadline:
                    raise
                if self.on_retry is not None:
                    self.on_retry(exc, delay)
                time.sleep(delay)
                attempt += 1

    def _once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            why = f"API unreachable at {self.target.url}: {exc or type(exc).__name__}"
            raise ApiUnreachable(f"{why}; {self.target.address_hint}" if self.target.address_hint else why) from None
        if response.is_success:
            return response
        raise _error(method, path, response, self.target)


def _segment(value: str) -> str:
    """An ID as typed, as one path segment: ``../batches`` must not become another endpoint's path."""
    return quote(value, safe="")


def _json(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    try:
        return response.json()
    except ValueError:
        problem = f"API answered {method} {path} with a body that is not JSON"
        raise ApiCallError(problem, response.status_code) from None


def _error(method: str, path: str, response: httpx.Response, target: ApiTarget) -> ApiCallError:
    """From the API's problem document (RFC 9457: ``detail``, ``title``, ``errors``), or whatever came back; a 401
    also says where the token came from and how to give another."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = str(body.get("detail") or body.get("title") or response.reason_phrase or "no message")
    problems = body.get("errors") if isinstance(body.get("errors"), list) else []
    text = f"API refused {method} {path} ({response.status_code}): {message}"
    if response.status_code == 401 and target.token_hint:
        text += f"; {target.token_hint}"
    return ApiCallError(text, response.status_code, problems)
