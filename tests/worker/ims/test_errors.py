"""The error tree, the IMG code -> ReasonCode table, error-body parsing and response classification."""

from __future__ import annotations

import pickle

import httpx
import pytest

from worker.domain.reasons import ReasonCode
from worker.errors import (
    AuthenticationError,
    CloudUnavailableError,
    ImsRefusedError,
    PermanentError,
    ReplicatorError,
    RetryableError,
    ThrottledError,
    reason_for_code,
)
from worker.ims.responses import error_from_response, outcome, parse_error_body, redact

SECRETS = ["AKEXAMPLE", "SKEXAMPLE", "hunter2-password", "MIIEtokentokentoken"]


def test_tree() -> None:
    assert issubclass(ThrottledError, RetryableError)
    assert issubclass(CloudUnavailableError, RetryableError)
    assert issubclass(ImsRefusedError, PermanentError)
    assert issubclass(AuthenticationError, PermanentError)
    assert issubclass(RetryableError, ReplicatorError)
    assert issubclass(PermanentError, ReplicatorError)
    assert not issubclass(RetryableError, PermanentError)


@pytest.mark.parametrize(
    ("codes", "reason"),
    [
        (["IMG.0027", "IMG.0086", "IMG.0144", "IMG.0066"], ReasonCode.IMAGE_NOT_FOUND),
        (["IMG.0046"], ReasonCode.IMAGE_NOT_ACTIVE),
        (["IMG.0130"], ReasonCode.FULL_ECS_IMAGE),
        (["IMG.0167"], ReasonCode.ISO_IMAGE),
        (["IMG.0059"], ReasonCode.IMAGE_TOO_LARGE),
        (["IMG.0002", "IMG.0003", "IMG.0013", "IMG.0062"], ReasonCode.INVALID_NAME),
        (["IMG.0009"], ReasonCode.NAME_EXISTS),
        (["IMG.0004", "IMG.0054"], ReasonCode.INVALID_DESCRIPTION),
        (["IMG.0095"], ReasonCode.KEY_NOT_FOUND),
        (["IMG.0097"], ReasonCode.KEY_DISABLED),
        (["IMG.0099"], ReasonCode.KEY_NO_ACCESS),
        (["IMG.0096"], ReasonCode.KEY_SAME_AS_SOURCE),
        (["IMG.0101", "IMG.0102", "IMG.0103"], ReasonCode.SOURCE_KEY_UNUSABLE),
        (["IMG.0015"], ReasonCode.QUOTA_EXCEEDED),
        (["IMG.0047", "IMG.0106"], ReasonCode.NOT_IMAGE_OWNER),
        (["IMG.0196"], ReasonCode.SHARE_NOT_ACCEPTED),
        (["IMG.0197"], ReasonCode.SHARED_COPY_KEY_REFUSED),
        (["IMG.0155"], ReasonCode.ENTERPRISE_PROJECT_REFUSED),
        (["IMG.0001", "IMG.0067", "IMG.9999", None], ReasonCode.IMS_REFUSED),
    ],
)
def test_reason_for_code(codes: list[str | None], reason: ReasonCode) -> None:
    for code in codes:
        assert reason_for_code(code) is reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error_code": "APIGW.0308", "error_msg": "slow down", "request_id": "r"}', ("APIGW.0308", "slow down")),
        ('{"errorCode": "X.1", "errorMsg": "camel"}', ("X.1", "camel")),
        ('{"code": "Y.2", "message": "plain"}', ("Y.2", "plain")),
        ('{"error": {"code": "IMG.0024", "message": "bad type"}}', ("IMG.0024", "bad type")),
        ('{"error": {"error_code": "KMS.0205", "error_msg": "no key"}}', ("KMS.0205", "no key")),
        ('{"error": {"code": 401, "message": "bad password", "title": "Unauthorized"}}', ("401", "bad password")),
        # The SDK's order: error_code wins over code when both are present.
        ('{"code": "late", "message": "m2", "error_code": "early", "error_msg": "m1"}', ("early", "m1")),
        ("<html>Bad Gateway</html>", (None, "<html>Bad Gateway</html>")),
        ('{"unrelated": true}', (None, '{"unrelated": true}')),
        (b"", (None, "")),
    ],
)
def test_parse_error_body(body: str | bytes, expected: tuple[str | None, str]) -> None:
    assert parse_error_body(body) == expected


def _response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://ims.example/v1/cloudimages/x/copy")
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, content=body or b"", headers=headers, request=request)


def _ims(code: str, message: str = "m") -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


def _gateway(code: str, message: str = "m") -> dict[str, object]:
    return {"error_code": code, "error_msg": message, "request_id": "body-rid"}


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (429, _gateway("APIGW.0308"), ThrottledError, None),
        (429, _gateway("APIG.0308"), ThrottledError, None),
        (429, b"", ThrottledError, None),
        (400, _ims("IMG.0060"), ThrottledError, None),
        (400, _ims("IMG.0187"), ThrottledError, None),
        (500, _ims("IMG.0999"), CloudUnavailableError, None),
        (502, _gateway("APIGW.0201"), CloudUnavailableError, None),
        (503, b"Service Unavailable", CloudUnavailableError, None),
        (401, _gateway("APIGW.0301"), AuthenticationError, ReasonCode.ACCOUNT_AUTH_FAILED),
        (401, _gateway("APIGW.0307"), AuthenticationError, ReasonCode.ACCOUNT_AUTH_FAILED),
        (403, _gateway("APIGW.0302"), AuthenticationError, ReasonCode.ACCOUNT_AUTH_FAILED),
        (403, _ims("IMG.0026"), AuthenticationError, ReasonCode.ACCOUNT_AUTH_FAILED),
        (403, _ims("IMG.0106"), ImsRefusedError, ReasonCode.NOT_IMAGE_OWNER),
        (400, _ims("IMG.0130"), ImsRefusedError, ReasonCode.FULL_ECS_IMAGE),
        (400, _ims("IMG.0015"), ImsRefusedError, ReasonCode.QUOTA_EXCEEDED),
        (400, _ims("IMG.0001"), ImsRefusedError, ReasonCode.IMS_REFUSED),
        (404, b"", ImsRefusedError, ReasonCode.IMAGE_NOT_FOUND),
        (404, _ims("IMG.0144"), ImsRefusedError, ReasonCode.IMAGE_NOT_FOUND),
        (302, b"", CloudUnavailableError, None),
    ],
)
def test_error_from_response(status: int, body: object, kind: type[ReplicatorError], reason: ReasonCode | None) -> None:
    err = error_from_response("copy", _response(status, body, {"X-Request-Id": "rid-1"}), SECRETS)
    assert type(err) is kind
    assert err.status_code == status
    assert err.endpoint == "copy"
    assert err.request_id == "rid-1"
    if reason is not None:
        assert isinstance(err, PermanentError)
        assert err.reason is reason


def test_bare_404_outside_image_endpoints_is_a_plain_refusal() -> None:
    err = error_from_response("job", _response(404), [])
    assert isinstance(err, ImsRefusedError)
    assert err.reason is ReasonCode.IMS_REFUSED


def test_retry_after_is_read_when_present() -> None:
    err = error_from_response("copy", _response(429, _gateway("APIGW.0308"), {"Retry-After": "2.5"}), [])
    assert isinstance(err, ThrottledError)
    assert err.retry_after == 2.5
    assert error_from_response("copy", _response(429, b""), []).retry_after is None


def test_str_is_one_readable_line() -> None:
    err = error_from_response(
        "copy",
        _response(400, _ims("IMG.0130", "The full-ECS image\n  cannot be replicated."), {"X-Request-Id": "r9"}),
        [],
    )
    assert str(err) == "copy: HTTP 400 IMG.0130 The full-ECS image cannot be replicated. (request_id r9)"
    assert str(ThrottledError("local rate limit reached", retry_after=0.2)) == "local rate limit reached"


def test_long_messages_are_cut() -> None:
    err = error_from_response("copy", _response(502, b"x" * 5000), [])
    assert len(err.message) <= 300
    assert "\n" not in str(err)


def test_secrets_never_reach_messages() -> None:
    echoed = "Get secretKey failed,ak:AKEXAMPLE,sk:SKEXAMPLE token MIIEtokentokentoken pw hunter2-password"
    for status, body in [(401, _gateway("APIGW.0301", echoed)), (400, _ims("IMG.0001", echoed)), (500, echoed)]:
        err = error_from_response("copy", _response(status, body), SECRETS)
        for secret in SECRETS:
            assert secret not in str(err)
            assert secret not in repr(err)
            assert secret not in err.message


def test_redact_replaces_longest_first() -> None:
    assert redact("abcdef abc", ["abc", "abcdef"]) == "*** ***"
    assert redact("nothing", ["", "zzz"]) == "nothing"


def test_outcome_labels() -> None:
    throttled = _response(400, _ims("IMG.0060"))
    assert outcome(throttled, error_from_response("copy", throttled, [])) == "IMG.0060"
    gateway = _response(429, _gateway("APIGW.0308"))
    assert outcome(gateway, error_from_response("copy", gateway, [])) == "429"
    assert outcome(_response(200, {}), None) == "200"
    assert outcome(_response(200, b"junk"), CloudUnavailableError("malformed")) == "malformed"


@pytest.mark.parametrize(
    "err",
    [
        ThrottledError("slow", retry_after=1.5, endpoint="copy", status_code=429, code="APIGW.0308", request_id="r"),
        CloudUnavailableError("down", endpoint="job"),
        ImsRefusedError("no", reason=ReasonCode.ISO_IMAGE, endpoint="copy", status_code=400, code="IMG.0167"),
        AuthenticationError("who", endpoint="token", status_code=401),
    ],
)
def test_errors_survive_pickling(err: ReplicatorError) -> None:
    # Celery's prefork pool sends task exceptions between processes with pickle.
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert back.__dict__ == err.__dict__
    assert str(back) == str(err)


@pytest.mark.parametrize(
    ("status", "code", "remedy"),
    [
        (403, "APIGW.0310", "correct IMSREP_ACCOUNTS__PROD_EU__PROJECT_ID or IMSREP_ACCOUNTS__PROD_EU__REGION"),
        (401, "APIGW.0301", "IMSREP_ACCOUNTS__PROD_EU__ACCESS_KEY and IMSREP_ACCOUNTS__PROD_EU__SECRET_KEY, or"),
        (403, "APIGW.0302", "grant the account's IAM user the IMS (and, for keys, KMS) permissions"),
    ],
)
def test_an_account_refusal_names_the_settings_that_fix_it(status: int, code: str, remedy: str) -> None:
    body = {"error_code": code, "error_msg": "refused"}
    error = error_from_response("list_images", httpx.Response(status, json=body), SECRETS)
    assert isinstance(error, AuthenticationError)
    assert error.for_account("prod_eu").startswith(f"{error}; ") and remedy in error.for_account("prod_eu")


def test_a_refusal_repeated_locally_adds_no_remedy_twice() -> None:
    error = AuthenticationError("credentials of account prod were refused recently: ...; correct ...")
    assert error.for_account("prod") == str(error)
