"""The simulator's verifier against the published vectors (the SDK's signer tests and IMS requests signed by
the official SDK), with the clock pinned to the vectors' date."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from simulator.signing import (
    SignatureError,
    canonical_query,
    canonical_request,
    compute_signature,
    parse_authorization,
    string_to_sign,
    verify,
)

EMPTY = hashlib.sha256(b"").hexdigest()
SDK_HEADERS = {"host": "service.endpoint.myhuaweicloud.com", "x-sdk-date": "20200608T023900Z"}
IMS_HOST = "ims.cn-north-4.myhuaweicloud.com"
PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
IMS_DATE = "20240101T000000Z"
COPY_BODY = b'{"name":"ims_encrypted_copy3","description":"test copy","cmk_id":"bd66288c-9081-460a-8227-4cbd0c814cb4"}'


def epoch(sdk_date: str) -> float:
    return datetime.strptime(sdk_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()


def auth_header(signed: str, signature: str, ak: str = "AKEXAMPLE") -> str:
    return f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={signed}, Signature={signature}"


def test_sdk_get_vector_and_its_intermediate_values() -> None:
    canonical = canonical_request("GET", "/resources", "size=1", SDK_HEADERS, ["host", "x-sdk-date"], EMPTY)
    assert canonical == (
        "GET\n/resources/\nsize=1\nhost:service.endpoint.myhuaweicloud.com\n"
        "x-sdk-date:20200608T023900Z\n\nhost;x-sdk-date\n" + EMPTY
    )
    to_sign = string_to_sign("20200608T023900Z", canonical)
    assert to_sign == (
        "SDK-HMAC-SHA256\n20200608T023900Z\nde94dd1e1ccdb730b403ce35d7e14f7c7b04337f6def1c3a3a2ba936852b133f"
    )
    assert compute_signature("SecretKey", to_sign) == (
        "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
    )


def test_sdk_post_vector() -> None:
    body = b'{"name":"test","id":1}'
    canonical = canonical_request(
        "POST", "/resources", "size=1", SDK_HEADERS, ["host", "x-sdk-date"], hashlib.sha256(body).hexdigest()
    )
    assert compute_signature("SecretKey", string_to_sign("20200608T023900Z", canonical)) == (
        "436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
    )


def test_query_canonicalisation_vector() -> None:
    received = (
        "limit=1&enable=true&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29&path=%2Ftmp%2F123&multi=3&multi=1&multi=2"
    )
    assert canonical_query(received) == (
        "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    )


IMS_VECTORS = [
    (
        "POST",
        "/v1/cloudimages/465076de-dc36-4aec-80f5-ef9d8009428f/copy",
        "",
        COPY_BODY,
        {"content-type": "application/json;charset=UTF-8"},
        "content-type;host;x-project-id;x-sdk-date",
        "cd154f5a45ae292c35db2e929b1d788b940f164677e84cac0cfbc2c308645019",
    ),
    (
        "GET",
        f"/v1/{PROJECT}/jobs/ff8080814dbd65d7014dbe0d84db0013",
        "",
        b"",
        {},
        "host;x-project-id;x-sdk-date",
        "01a27542e52ffc524e835f94d1d8b5a365e4173cd284ad126ac419ac706e068e",
    ),
    (
        "GET",
        "/v2/cloudimages",
        "id=465076de-dc36-4aec-80f5-ef9d8009428f&__imagetype=private",
        b"",
        {},
        "host;x-project-id;x-sdk-date",
        "79cf2ec8db3b9dceb684878f0ed02f9906dda4acdf3237eb79af839dfb6447a6",
    ),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "extra", "signed", "signature"), IMS_VECTORS)
def test_ims_vectors_verify_at_their_pinned_date(
    method: str, path: str, query: str, body: bytes, extra: dict[str, str], signed: str, signature: str
) -> None:
    headers = {"host": IMS_HOST, "x-project-id": PROJECT, "x-sdk-date": IMS_DATE, **extra}
    authorization = parse_authorization(auth_header(signed, signature))
    assert authorization is not None
    verify(
        method=method,
        raw_path=path,
        raw_query=query,
        headers=headers,
        body=body,
        authorization=authorization,
        secret_key="SKEXAMPLE",
        now=epoch(IMS_DATE) + 60,
    )


@pytest.mark.parametrize(("method", "path", "query", "body", "extra", "signed", "signature"), IMS_VECTORS)
def test_the_tests_own_signer_reproduces_the_ims_vectors(
    signer: Callable[..., str],
    method: str,
    path: str,
    query: str,
    body: bytes,
    extra: dict[str, str],
    signed: str,
    signature: str,
) -> None:
    pairs = [tuple(part.split("=", 1)) for part in query.split("&") if part]
    headers = {"X-Project-Id": PROJECT, "X-Sdk-Date": IMS_DATE, **{k.title(): v for k, v in extra.items()}}
    assert signer(method, IMS_HOST, path, pairs, headers, body, "AKEXAMPLE", "SKEXAMPLE") == (
        auth_header(signed, signature)
    )


def _copy_vector(**overrides: object) -> dict[str, object]:
    method, path, query, body, extra, signed, signature = IMS_VECTORS[0]
    authorization = parse_authorization(auth_header(signed, signature))
    args: dict[str, object] = {
        "method": method,
        "raw_path": path,
        "raw_query": query,
        "body": body,
        "authorization": authorization,
        "secret_key": "SKEXAMPLE",
        "now": epoch(IMS_DATE),
        "headers": {"host": IMS_HOST, "x-project-id": PROJECT, "x-sdk-date": IMS_DATE, **extra},
    }
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    "overrides",
    [
        {"now": epoch(IMS_DATE) + 15 * 60 + 1},  # clock skew over 15 minutes, either way
        {"now": epoch(IMS_DATE) - 15 * 60 - 1},
        {"body": COPY_BODY.replace(b"test copy", b"test copz")},
        {"method": "PUT"},
        {"raw_path": "/v1/cloudimages/465076de-dc36-4aec-80f5-ef9d8009428f/copy/x"},
        {"raw_query": "a=1"},
        {"secret_key": "SKOTHER"},
        {
            "headers": {
                "host": "other.example",
                "x-project-id": PROJECT,
                "x-sdk-date": IMS_DATE,
                "content-type": "application/json;charset=UTF-8",
            }
        },
        {"headers": {"host": IMS_HOST, "x-sdk-date": IMS_DATE, "content-type": "application/json;charset=UTF-8"}},
        {"headers": {"host": IMS_HOST, "x-project-id": PROJECT, "content-type": "application/json;charset=UTF-8"}},
    ],
)
def test_any_change_or_skew_breaks_verification(overrides: dict[str, object]) -> None:
    with pytest.raises(SignatureError):
        verify(**_copy_vector(**overrides))  # type: ignore[arg-type]


def test_skew_just_inside_fifteen_minutes_is_accepted() -> None:
    verify(**_copy_vector(now=epoch(IMS_DATE) + 15 * 60))  # type: ignore[arg-type]


def test_unsigned_payload_skips_the_body_hash() -> None:
    headers = {"host": IMS_HOST, "x-sdk-date": IMS_DATE, "x-sdk-content-sha256": "UNSIGNED-PAYLOAD"}
    signed = ["host", "x-sdk-content-sha256", "x-sdk-date"]
    canonical = canonical_request("PUT", "/upload", "", headers, signed, "UNSIGNED-PAYLOAD")
    signature = compute_signature("SKEXAMPLE", string_to_sign(IMS_DATE, canonical))
    authorization = parse_authorization(auth_header(";".join(signed), signature))
    assert authorization is not None
    verify(
        method="PUT",
        raw_path="/upload",
        raw_query="",
        headers=headers,
        body=b"any bytes at all",
        authorization=authorization,
        secret_key="SKEXAMPLE",
        now=epoch(IMS_DATE),
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Bearer abc",
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host",
        "SDK-HMAC-SHA256 Credential=AK/20150907//ec2/sdk_request, SignedHeaders=host, Signature=ab",
    ],
)
def test_malformed_authorization_headers_are_not_parsed(value: str) -> None:
    assert parse_authorization(value) is None


def test_percent_encoded_path_segments_are_canonicalised_per_segment() -> None:
    headers = {"host": "h", "x-sdk-date": IMS_DATE}
    # A client that sent a space as %20 and one that sent it raw sign the same canonical URI.
    assert canonical_request("GET", "/a%20b/c", "", headers, ["host"], EMPTY) == canonical_request(
        "GET", "/a b/c", "", headers, ["host"], EMPTY
    )
    assert "\n/a%20b/c/\n" in canonical_request("GET", "/a%20b/c", "", headers, ["host"], EMPTY)
