"""AK/SK request signing, SDK-HMAC-SHA256, exactly as the Huawei Cloud SDK's ``Signer`` (docs/ims-api.md §8).

The canonical-request builder is a set of pure functions so tests can check every intermediate value against the
contract's vectors; :class:`AkSkAuth` applies them to httpx requests.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import datetime, timezone
from urllib.parse import quote, unquote

import httpx

from worker.ims.credentials import Credentials, CredentialSource
from worker.ims.responses import parse_error_body

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# Headers httpx adds that the SDK leaves to its transport (requests/urllib3) to add *after* signing, so APIG is
# only known to accept signatures without them; hop-by-hop headers may be rewritten on the way; Authorization is
# the signature itself. Everything else present (Host, Content-Type, User-Agent, X-*) is signed, like the SDK.
UNSIGNED_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "authorization",
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def canonical_uri(path: str) -> str:
    """Each segment of the decoded path re-encoded, with a trailing ``/`` (for signing only)."""
    uri = "/".join(quote(unquote(segment), safe="~") for segment in path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def _query_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical_query(pairs: Iterable[tuple[str, object]]) -> str:
    """Sorted ``k=v`` pairs, both sides ``quote(safe='~')``; a list value gives one pair per element."""
    items: list[tuple[str, str]] = []
    for key, value in pairs:
        values = value if isinstance(value, (list, tuple)) else [value]
        items.extend((key, _query_text(v)) for v in values)
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(items))


def _signable(headers: Mapping[str, str]) -> dict[str, str]:
    # The SDK never signs a header whose name contains "_" (gateways may drop such headers).
    return {name.lower(): value.strip() for name, value in headers.items() if "_" not in name}


def signed_headers(headers: Mapping[str, str]) -> str:
    return ";".join(sorted(_signable(headers)))


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> str:
    """The CanonicalRequest of 6.2 step 9; ``query`` is already canonical (see :func:`canonical_query`)."""
    signable = _signable(headers)
    canonical_headers = "".join(f"{name}:{signable[name]}\n" for name in sorted(signable))
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            query,
            canonical_headers,
            ";".join(sorted(signable)),
            hashlib.sha256(body).hexdigest(),
        )
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The ``Authorization`` value for a request whose headers already include ``X-Sdk-Date`` and ``Host``."""
    sdk_date = next(v for k, v in headers.items() if k.lower() == DATE_HEADER.lower())
    to_sign = string_to_sign(canonical_request(method, path, query, headers, body), sdk_date)
    return (
        f"{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers(headers)}, "
        f"Signature={signature(secret_key, to_sign)}"
    )


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# A request extension: sign without ``X-Project-Id`` (IAM's account-wide calls, such as the project list).
UNSCOPED = "imsrep_unscoped"
SECURITY_TOKEN_HEADER = "X-Security-Token"
# A 401 that says the gateway no longer takes these credentials: temporary ones are renewed once and the request
# sent again (a clock ahead of ours may see them expire before we renew them).
_REFUSED_CODES = frozenset({"APIGW.0301", "APIGW.0307"})


class AkSkAuth(httpx.Auth):
    """Signs each request with the AK/SK ``credentials`` hold, adding ``X-Sdk-Date``, ``X-Project-Id`` (unless the
    request carries the ``UNSCOPED`` extension) and, for a temporary AK/SK, ``X-Security-Token`` first: as in the
    SDK's ``Credentials.sign_request``, the token is a header like any other, so it is signed.

    The request's query is rewritten to its canonical form, so the string signed is the string sent.
    """

    requires_request_body = True
    requires_response_body = True  # to read the error code of a 401

    def __init__(
        self,
        credentials: CredentialSource,
        project_id: str,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._credentials = credentials
        self._project_id = project_id
        self._clock = clock

    def secret_values(self) -> list[str]:
        return self._credentials.secret_values()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        credentials = self._credentials.current()
        response = yield self._sign(request, credentials)
        if response.status_code != 401 or parse_error_body(response.content)[0] not in _REFUSED_CODES:
            return
        renewed = self._credentials.renewed(credentials)
        if renewed is not None:
            yield self._sign(request, renewed)

    def _sign(self, request: httpx.Request, credentials: Credentials) -> httpx.Request:
        if DATE_HEADER not in request.headers:
            request.headers[DATE_HEADER] = self._clock().astimezone(timezone.utc).strftime(DATE_FORMAT)
        if not request.extensions.get(UNSCOPED):
            request.headers["X-Project-Id"] = self._project_id
        if credentials.security_token is not None:
            request.headers[SECURITY_TOKEN_HEADER] = credentials.security_token.get_secret_value()
        query = canonical_query(request.url.params.multi_items())
        if query:
            request.url = request.url.copy_with(query=query.encode("ascii"))
        path = request.url.raw_path.partition(b"?")[0].decode("ascii")
        to_sign = {k: v for k, v in request.headers.items() if k.lower() not in UNSIGNED_HEADERS}
        request.headers["Authorization"] = authorization(
            credentials.access_key.get_secret_value(),
            credentials.secret_key.get_secret_value(),
            request.method,
            path,
            query,
            to_sign,
            request.content,
        )
        return request
