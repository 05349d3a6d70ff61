"""The signer against the SDK's published test vectors and IMS-specific ones, byte for byte, and as an httpx.Auth."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import httpx
import pytest
from pydantic import SecretStr

from worker.ims.credentials import Credentials, StaticCredentials
from worker.ims.signer import (
    AkSkAuth,
    authorization,
    canonical_query,
    canonical_request,
    canonical_uri,
    signed_headers,
    string_to_sign,
)

SDK_HEADERS = {
    "Host": "service.endpoint.myhuaweicloud.com",
    "X-Sdk-Date": "20200608T023900Z",
    "TEST_UNDERSCORE": "TEST_VALUE",
}
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

IMS_PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
IMS_HEADERS = {
    "Host": "ims.cn-north-4.myhuaweicloud.com",
    "X-Project-Id": IMS_PROJECT,
    "X-Sdk-Date": "20240101T000000Z",
}
COPY_BODY = b'{"name":"ims_encrypted_copy3","description":"test copy","cmk_id":"bd66288c-9081-460a-8227-4cbd0c814cb4"}'
COPY_PATH = "/v1/cloudimages/465076de-dc36-4aec-80f5-ef9d8009428f/copy"
JOB_PATH = f"/v1/{IMS_PROJECT}/jobs/ff8080814dbd65d7014dbe0d84db0013"


def test_sdk_get_vector_intermediate_values() -> None:
    canonical = canonical_request("GET", "/resources", canonical_query([("size", "1")]), SDK_HEADERS, b"")
    assert canonical == (
        "GET\n/resources/\nsize=1\nhost:service.endpoint.myhuaweicloud.com\nx-sdk-date:20200608T023900Z\n\n"
        "host;x-sdk-date\n" + EMPTY_SHA256
    )
    assert string_to_sign(canonical, "20200608T023900Z") == (
        "SDK-HMAC-SHA256\n20200608T023900Z\nde94dd1e1ccdb730b403ce35d7e14f7c7b04337f6def1c3a3a2ba936852b133f"
    )


def test_sdk_get_vector() -> None:
    assert authorization("AccessKey", "SecretKey", "GET", "/resources", "size=1", SDK_HEADERS, b"") == (
        "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
        "Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
    )


def test_sdk_post_vector() -> None:
    body = b'{"name":"test","id":1}'
    assert authorization("AccessKey", "SecretKey", "POST", "/resources", "size=1", SDK_HEADERS, body) == (
        "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
        "Signature=436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
    )


def test_query_canonicalisation_vector() -> None:
    pairs = [("limit", 1), ("enable", True), ("test", "一 (&=?!#%.*)"), ("path", "/tmp/123"), ("multi", [1, 2, 3])]
    assert canonical_query(pairs) == (
        "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    )


def test_underscore_headers_are_not_signed() -> None:
    assert signed_headers(SDK_HEADERS) == "host;x-sdk-date"


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/resources", "/resources/"), ("/app1/", "/app1/"), ("/a%20b/c d", "/a%20b/c%20d/"), ("", "/")],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


def test_ims_copy_vector() -> None:
    headers = {**IMS_HEADERS, "Content-Type": "application/json;charset=UTF-8"}
    assert hashlib.sha256(COPY_BODY).hexdigest().startswith("44383a67")
    assert hashlib.sha256(COPY_BODY).hexdigest().endswith("07af")
    assert authorization("AKEXAMPLE", "SKEXAMPLE", "POST", COPY_PATH, "", headers, COPY_BODY) == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        "Signature=cd154f5a45ae292c35db2e929b1d788b940f164677e84cac0cfbc2c308645019"
    )


def test_ims_job_vector() -> None:
    assert authorization("AKEXAMPLE", "SKEXAMPLE", "GET", JOB_PATH, "", IMS_HEADERS, b"") == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=host;x-project-id;x-sdk-date, "
        "Signature=01a27542e52ffc524e835f94d1d8b5a365e4173cd284ad126ac419ac706e068e"
    )


def test_ims_list_vector_sorts_underscore_first() -> None:
    query = canonical_query([("id", "465076de-dc36-4aec-80f5-ef9d8009428f"), ("__imagetype", "private")])
    assert query == "__imagetype=private&id=465076de-dc36-4aec-80f5-ef9d8009428f"
    assert authorization("AKEXAMPLE", "SKEXAMPLE", "GET", "/v2/cloudimages", query, IMS_HEADERS, b"") == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=host;x-project-id;x-sdk-date, "
        "Signature=79cf2ec8db3b9dceb684878f0ed02f9906dda4acdf3237eb79af839dfb6447a6"
    )


def _auth(clock_value: datetime | None = None) -> AkSkAuth:
    when = clock_value or datetime(2024, 1, 1, tzinfo=timezone.utc)
    credentials = StaticCredentials(Credentials(SecretStr("AKEXAMPLE"), SecretStr("SKEXAMPLE")))
    return AkSkAuth(credentials, IMS_PROJECT, clock=lambda: when)


def _signed(request: httpx.Request, auth: AkSkAuth) -> httpx.Request:
    return next(auth.sync_auth_flow(request))


def test_auth_reproduces_the_copy_vector() -> None:
    request = httpx.Request(
        "POST",
        f"https://ims.cn-north-4.myhuaweicloud.com{COPY_PATH}",
        headers={"Content-Type": "application/json;charset=UTF-8"},
        content=COPY_BODY,
    )
    signed = _signed(request, _auth())
    assert signed.headers["X-Sdk-Date"] == "20240101T000000Z"
    assert signed.headers["X-Project-Id"] == IMS_PROJECT
    assert signed.headers["Authorization"].endswith(
        "SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        "Signature=cd154f5a45ae292c35db2e929b1d788b940f164677e84cac0cfbc2c308645019"
    )


def test_auth_reproduces_the_list_vector_and_sends_the_canonical_query() -> None:
    request = httpx.Request(
        "GET",
        "https://ims.cn-north-4.myhuaweicloud.com/v2/cloudimages",
        params={"id": "465076de-dc36-4aec-80f5-ef9d8009428f", "__imagetype": "private"},
    )
    signed = _signed(request, _auth())
    assert signed.url.query == b"__imagetype=private&id=465076de-dc36-4aec-80f5-ef9d8009428f"
    assert signed.headers["Authorization"].endswith(
        "Signature=79cf2ec8db3b9dceb684878f0ed02f9906dda4acdf3237eb79af839dfb6447a6"
    )


def test_auth_keeps_a_date_the_caller_set() -> None:
    request = httpx.Request(
        "GET", f"https://ims.cn-north-4.myhuaweicloud.com{JOB_PATH}", headers={"X-Sdk-Date": "20240101T000000Z"}
    )
    signed = _signed(request, _auth(datetime(2030, 5, 5, tzinfo=timezone.utc)))
    assert signed.headers["X-Sdk-Date"] == "20240101T000000Z"
    assert signed.headers["Authorization"].endswith(
        "Signature=01a27542e52ffc524e835f94d1d8b5a365e4173cd284ad126ac419ac706e068e"
    )


def test_auth_leaves_transport_headers_unsigned_and_signs_the_rest() -> None:
    # What a real httpx.Client adds before auth runs: accept, accept-encoding, connection, user-agent.
    with httpx.Client(headers={"User-Agent": "ims-replicator/test"}) as client:
        request = client.build_request(
            "POST",
            "https://ims.cn-north-4.myhuaweicloud.com/v1/x/copy",
            content=b"{}",
            headers={"Content-Type": "application/json"},
        )
    signed = _signed(request, _auth())
    assert "SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date," in signed.headers["Authorization"]


def test_auth_replaces_a_stale_authorization_header() -> None:
    request = httpx.Request("GET", f"https://ims.cn-north-4.myhuaweicloud.com{JOB_PATH}")
    auth = _auth()
    first = _signed(request, auth).headers["Authorization"]
    assert _signed(request, auth).headers["Authorization"] == first


# Computed with the official SDK: BasicCredentials("AKEXAMPLE", "SKEXAMPLE", IMS_PROJECT)
# .with_security_token("SECURITYTOKENEXAMPLE").sign_request(...) (huaweicloudsdkcore 3.1.219) on the job query with
# X-Sdk-Date pinned. The SDK adds X-Security-Token before signing, so the token is one of the signed headers.
TOKEN_SIGNATURE = "7a07bb80d2bf5f1b94f9129579061f7d989d30510114273d2901a717c55e38db"


def _temporary(ak: str = "AKEXAMPLE", token: str = "SECURITYTOKENEXAMPLE") -> Credentials:
    return Credentials(SecretStr(ak), SecretStr("SKEXAMPLE"), SecretStr(token))


def test_a_temporary_ak_sends_its_security_token_signed_as_the_sdk_does() -> None:
    auth = AkSkAuth(
        StaticCredentials(_temporary()), IMS_PROJECT, clock=lambda: datetime(2024, 1, 1, tzinfo=timezone.utc)
    )
    signed = _signed(httpx.Request("GET", f"https://ims.cn-north-4.myhuaweicloud.com{JOB_PATH}"), auth)
    assert signed.headers["X-Security-Token"] == "SECURITYTOKENEXAMPLE"
    assert signed.headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=host;x-project-id;x-sdk-date;x-security-token, "
        f"Signature={TOKEN_SIGNATURE}"
    )


def test_a_permanent_ak_sends_no_security_token() -> None:
    signed = _signed(httpx.Request("GET", f"https://ims.cn-north-4.myhuaweicloud.com{JOB_PATH}"), _auth())
    assert "X-Security-Token" not in signed.headers


class _Rotating:
    """A credential source whose credentials the gateway refuses once; ``renewed`` hands out the next ones."""

    def __init__(self, renewals: list[Credentials]) -> None:
        self.held = _temporary("AKOLD", "TOKENOLD")
        self.renewals = renewals
        self.refused: list[Credentials] = []

    def current(self) -> Credentials:
        return self.held

    def renewed(self, refused: Credentials) -> Credentials | None:
        self.refused.append(refused)
        if not self.renewals:
            return None
        self.held = self.renewals.pop(0)
        return self.held

    def secret_values(self) -> list[str]:
        return self.held.secret_values()


def _refused(code: str = "APIGW.0301") -> httpx.Response:
    return httpx.Response(401, json={"error_code": code, "error_msg": "Incorrect IAM authentication information"})


def test_refused_temporary_credentials_are_renewed_once_and_the_request_sent_again() -> None:
    source = _Rotating([_temporary("AKNEW", "TOKENNEW")])
    flow = AkSkAuth(source, IMS_PROJECT).sync_auth_flow(
        httpx.Request("GET", f"https://ims.cn-north-4.myhuaweicloud.com{JOB_PATH}")
    )
    first = next(flow)
    assert "Access=AKOLD" in first.headers["Authorization"] and first.headers["X-Security-Token"] == "TOKENOLD"
    again = flow.send(_refused())
    assert "Access=AKNEW" in again.headers["Authorization"] and again.headers["X-Security-Token"] == "TOKENNEW"
    with pytest.raises(StopIteration):
        flow.send(_refused())  # refused again: that answer is the caller's, no third attempt
    assert [c.access_key.get_secret_value() for c in source.refused] == ["AKOLD"]


@pytest.mark.parametrize("answer", [httpx.Response(200, json={}), _refused("APIGW.0302"), httpx.Response(403)])
def test_other_answers_are_not_sent_again(answer: httpx.Response) -> None:
    source = _Rotating([_temporary("AKNEW", "TOKENNEW")])
    flow = AkSkAuth(source, IMS_PROJECT).sync_auth_flow(httpx.Request("GET", "https://ims.example.com/v2/cloudimages"))
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(answer)
    assert source.refused == []


def test_with_no_renewal_the_refusal_stands() -> None:
    source = _Rotating([])
    flow = AkSkAuth(source, IMS_PROJECT).sync_auth_flow(httpx.Request("GET", "https://ims.example.com/v2/cloudimages"))
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(_refused())
    assert len(source.refused) == 1
