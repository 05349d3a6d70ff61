"""SDK-HMAC-SHA256 verification, written from Huawei's signing guide (not shared with the client in worker/):
https://support.huaweicloud.com/intl/en-us/devg-apisign/api-sign-algorithm-002.html

The canonical request is rebuilt from what was *received*: method, path (decoded, re-encoded per segment, a
``/`` appended), query (parsed, sorted, re-encoded), the headers the client listed, and the body's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_CLOCK_SKEW_SECONDS = 15 * 60
DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class SignatureError(Exception):
    """The signature does not verify; the message says why (for the log, never for the client)."""


@dataclass(frozen=True)
class Authorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def _encode(text: str) -> str:
    # RFC 3986 unreserved characters stay; everything else, space included, is %XX.
    return quote(text, safe="~")


def canonical_uri(raw_path: str) -> str:
    uri = "/".join(_encode(segment) for segment in unquote(raw_path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: str) -> str:
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    block = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            block,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def string_to_sign(sdk_date: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def compute_signature(secret_key: str, text: str) -> str:
    return hmac.new(secret_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def parse_authorization(value: str) -> Authorization | None:
    """``SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex``, or ``None`` if it is not that."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val.strip()
    if not all(fields.get(k) for k in ("Access", "SignedHeaders", "Signature")):
        return None
    signed = tuple(name.strip().lower() for name in fields["SignedHeaders"].split(";") if name.strip())
    return Authorization(fields["Access"], signed, fields["Signature"])


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    authorization: Authorization,
    secret_key: str,
    now: float,
) -> None:
    """Raise ``SignatureError`` unless the request is signed by ``secret_key`` within the allowed clock skew.

    ``headers`` maps lower-case names to values; ``now`` is epoch seconds, passed in so tests can pin it.
    """
    sdk_date = headers.get("x-sdk-date", "")
    try:
        signed_at = datetime.strptime(sdk_date, DATE_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError as exc:
        raise SignatureError(f"bad or missing X-Sdk-Date {sdk_date!r}") from exc
    if abs(now - signed_at) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureError(f"X-Sdk-Date {sdk_date} is more than 15 minutes from the server clock")
    missing = [name for name in authorization.signed_headers if name not in headers]
    if missing:
        raise SignatureError(f"signed headers missing from the request: {missing}")
    if headers.get("x-sdk-content-sha256") == UNSIGNED_PAYLOAD:
        payload_hash = UNSIGNED_PAYLOAD
    else:
        payload_hash = hashlib.sha256(body).hexdigest()
    canonical = canonical_request(method, raw_path, raw_query, headers, authorization.signed_headers, payload_hash)
    expected = compute_signature(secret_key, string_to_sign(sdk_date, canonical))
    if not hmac.compare_digest(expected, authorization.signature.lower()):
        raise SignatureError("signature mismatch")
