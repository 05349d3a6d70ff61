"""ImsClient over httpx.MockTransport: requests as the contract wants them, answers as typed results or errors."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from config.settings import AccountSettings
from worker.domain.reasons import ReasonCode
from worker.errors import (
    AuthenticationError,
    CloudUnavailableError,
    ImsRefusedError,
    ThrottledError,
)
from worker.ims.client import ImsClient, shared_http
from worker.ims.hooks import ClientHooks

PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
IMAGE_ID = "465076de-dc36-4aec-80f5-ef9d8009428f"
KEY_ID = "bd66288c-9081-460a-8227-4cbd0c814cb4"
JOB_ID = "edc89b490d7d4392898e19b2deb34797"
IMS = "https://ims.cn-north-4.myhuaweicloud.com"
KMS = "https://kms.cn-north-4.myhuaweicloud.com"

Handler = Callable[[httpx.Request], httpx.Response]


def aksk_account(**extra: object) -> AccountSettings:
    return AccountSettings(project_id=PROJECT, access_key="AKEXAMPLE", secret_key="SKEXAMPLE", **extra)


def token_account() -> AccountSettings:
    return AccountSettings(project_id=PROJECT, iam_user="u", iam_password="pw-secret-1", iam_domain="d")


class RecordingHooks(ClientHooks):
    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.refuse = refuse

    def before_request(self, endpoint: str) -> None:
        self.calls.append(("before", endpoint))
        if self.refuse:
            raise ThrottledError("local rate limit", retry_after=0.5, endpoint=endpoint)

    def after_response(self, endpoint: str, outcome: str) -> None:
        self.calls.append(("after", endpoint, outcome))


class Recorder:
    """A MockTransport handler that records requests and answers from a script or a function."""

    def __init__(self, answer: Handler | httpx.Response | list[httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.answer, list):
            return self.answer.pop(0)
        if isinstance(self.answer, httpx.Response):
            return self.answer
        return self.answer(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def make(
    answer: Handler | httpx.Response | list[httpx.Response],
    account: AccountSettings | None = None,
    hooks: ClientHooks | None = None,
) -> tuple[ImsClient, Recorder]:
    recorder = Recorder(answer)
    client = ImsClient(
        account or aksk_account(),
        connect_timeout=1.0,
        read_timeout=2.0,
        transport=httpx.MockTransport(recorder),
        hooks=hooks,
    )
    return client, recorder


def ok(body: object) -> httpx.Response:
    return httpx.Response(200, json=body)


def ims_error(code: str, status: int = 400) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "m"}}, headers={"X-Request-Id": "rid"})


def gateway_error(code: str, status: int) -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "error_msg": "m", "request_id": "rid"})


def image(image_id: str, **fields: object) -> dict[str, object]:
    return {"id": image_id, "name": f"n-{image_id}", "status": "active", **fields}


# -- authentication --------------------------------------------------------------------------------------------


def test_aksk_requests_are_signed() -> None:
    client, rec = make(ok({"job_id": JOB_ID}))
    client.copy_image(IMAGE_ID, name="copy")
    headers = rec.last.headers
    assert headers["X-Project-Id"] == PROJECT
    assert len(headers["X-Sdk-Date"]) == 16
    assert headers["Authorization"].startswith(
        "SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, "
    )
    assert "X-Auth-Token" not in headers


def test_token_accounts_send_x_auth_token() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            return httpx.Response(201, headers={"X-Subject-Token": "tok-1"}, json={"token": {}})
        return ok({"images": []})

    client, rec = make(answer, token_account())
    client.list_images()
    assert str(rec.requests[0].url).startswith("https://iam.cn-north-4.myhuaweicloud.com/v3/auth/tokens")
    assert rec.last.headers["X-Auth-Token"] == "tok-1"
    assert "Authorization" not in rec.last.headers


def test_clients_sharing_one_http_client_each_send_their_own_credentials() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            return httpx.Response(201, headers={"X-Subject-Token": "tok-1"}, json={"token": {}})
        return ok({"images": []})

    rec = Recorder(answer)
    http = shared_http(connect_timeout=1.0, read_timeout=2.0, transport=httpx.MockTransport(rec))
    signed = ImsClient(aksk_account(), connect_timeout=1.0, read_timeout=2.0, http=http)
    other = ImsClient(
        AccountSettings(project_id="f" * 32, access_key="AKOTHER", secret_key="SKOTHER"),
        connect_timeout=1.0,
        read_timeout=2.0,
        http=http,
    )
    token = ImsClient(token_account(), connect_timeout=1.0, read_timeout=2.0, http=http)
    for client in (signed, other, token, signed):
        client.list_images()
        client.close()  # the shared client stays open: its owner closes it
    calls = [r for r in rec.requests if r.url.path == "/v2/cloudimages"]
    assert [r.headers.get("X-Project-Id") for r in calls] == [PROJECT, "f" * 32, None, PROJECT]
    assert "Access=AKEXAMPLE" in calls[0].headers["Authorization"]
    assert "Access=AKOTHER" in calls[1].headers["Authorization"]
    assert calls[2].headers["X-Auth-Token"] == "tok-1" and "Authorization" not in calls[2].headers
    assert "Access=AKEXAMPLE" in calls[3].headers["Authorization"] and "X-Auth-Token" not in calls[3].headers
    http.close()


def test_a_token_refused_twice_is_an_authentication_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            return httpx.Response(201, headers={"X-Subject-Token": "tok"}, json={"token": {}})
        return gateway_error("APIGW.0307", 401)

    client, rec = make(answer, token_account())
    with pytest.raises(AuthenticationError) as info:
        client.get_job(JOB_ID)  # fresh token refused: no renewal
    assert sum(1 for r in rec.requests if r.url.path.endswith("/v3/auth/tokens")) == 1
    assert info.value.reason is ReasonCode.ACCOUNT_AUTH_FAILED
    with pytest.raises(AuthenticationError):
        client.get_job(JOB_ID)  # cached token refused: one renewal, refused again
    assert sum(1 for r in rec.requests if r.url.path.endswith("/v3/auth/tokens")) == 2


def test_aksk_refusal_is_an_authentication_error_without_secrets() -> None:
    echoed = httpx.Response(
        401,
        json={"error_code": "APIGW.0301", "error_msg": "Get secretKey failed,ak:AKEXAMPLE sk SKEXAMPLE"},
    )
    client, _ = make(echoed)
    with pytest.raises(AuthenticationError) as info:
        client.list_images()
    text = str(info.value)
    assert "AKEXAMPLE" not in text and "SKEXAMPLE" not in text
    assert "Authorization" not in text and "SDK-HMAC" not in text


def test_token_transport_failure_names_the_token_endpoint() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    hooks = RecordingHooks()
    client, _ = make(answer, token_account(), hooks)
    with pytest.raises(CloudUnavailableError) as info:
        client.list_images()
    assert info.value.endpoint == "token"
    assert hooks.calls == [
        ("before", "list_images"),
        ("before", "token"),
        ("after", "token", "timeout"),
        ("after", "list_images", "token_error"),
    ]


# -- images ----------------------------------------------------------------------------------------------------


def test_list_images_passes_filters_as_query() -> None:
    client, rec = make(ok({"images": [image("a", __image_size="10")]}))
    images = client.list_images(__imagetype="private", status="active", __whole_image=False, owner=None, limit=10)
    assert [i.id for i in images] == ["a"] and images[0].size_bytes == 10
    assert rec.last.url.path == "/v2/cloudimages"
    # Sent in canonical (signed) order; None filters are left out; booleans are lower-case.
    assert rec.last.url.query == b"__imagetype=private&__whole_image=false&limit=10&status=active"


def test_iter_images_pages_with_the_last_id_as_marker() -> None:
    pages = [
        ok({"images": [image("a"), image("b")]}),
        ok({"images": [image("c"), image("d")]}),
        ok({"images": [image("e")]}),
    ]
    client, rec = make(pages)
    assert [i.id for i in client.iter_images(page_size=2, status="active")] == ["a", "b", "c", "d", "e"]
    sent = [dict(r.url.params) for r in rec.requests]
    assert sent == [
        {"limit": "2", "status": "active"},
        {"limit": "2", "status": "active", "marker": "b"},
        {"limit": "2", "status": "active", "marker": "d"},
    ]


def test_iter_images_stops_on_an_empty_page() -> None:
    client, rec = make([ok({"images": [image("a"), image("b")]}), ok({"images": []})])
    assert [i.id for i in client.iter_images(page_size=2)] == ["a", "b"]
    assert len(rec.requests) == 2


def test_iter_images_refuses_a_marker_that_does_not_advance() -> None:
    client, _ = make(lambda request: ok({"images": [image("a"), image("b")]}))
    with pytest.raises(CloudUnavailableError, match="did not advance"):
        list(client.iter_images(page_size=2, marker="b"))


def test_get_image() -> None:
    client, rec = make(ok({"images": [image(IMAGE_ID, __whole_image="true")]}))
    found = client.get_image(IMAGE_ID)
    assert found is not None and found.is_full_ecs
    assert dict(rec.last.url.params) == {"id": IMAGE_ID}


@pytest.mark.parametrize("images", [[], [image("someone-else")]])
def test_get_image_missing(images: list[object]) -> None:
    client, _ = make(ok({"images": images}))
    assert client.get_image(IMAGE_ID) is None


# -- copy and jobs ---------------------------------------------------------------------------------------------


def test_copy_image_request() -> None:
    client, rec = make(ok({"job_id": JOB_ID}))
    job_id = client.copy_image(IMAGE_ID, name="ims_encrypted_copy3", description="test copy", cmk_id=KEY_ID)
    assert job_id == JOB_ID
    assert rec.last.method == "POST"
    assert str(rec.last.url) == f"{IMS}/v1/cloudimages/{IMAGE_ID}/copy"
    assert rec.last.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert rec.last.content == (
        b'{"name":"ims_encrypted_copy3","description":"test copy","cmk_id":"bd66288c-9081-460a-8227-4cbd0c814cb4"}'
    )


def test_copy_image_omits_absent_fields_and_keeps_unicode() -> None:
    client, rec = make(ok({"job_id": JOB_ID}))
    client.copy_image(IMAGE_ID, name="副本 copy", description="", enterprise_project_id="0")
    assert str(rec.last.url) == f"{IMS}/v1/cloudimages/{IMAGE_ID}/copy"
    assert json.loads(rec.last.content) == {"name": "副本 copy", "enterprise_project_id": "0"}


def test_copy_image_encodes_the_id_into_one_path_segment() -> None:
    client, rec = make(ok({"job_id": JOB_ID}))
    client.copy_image("../../v2/x?y", name="n")
    assert rec.last.url.raw_path == b"/v1/cloudimages/..%2F..%2Fv2%2Fx%3Fy/copy"


@pytest.mark.parametrize("body", [{}, {"job_id": ""}, {"job_id": 5}, ["job_id"]])
def test_copy_without_a_job_id_may_have_been_applied(body: object) -> None:
    client, _ = make(ok(body))
    with pytest.raises(CloudUnavailableError) as info:
        client.copy_image(IMAGE_ID, name="n")
    assert info.value.endpoint == "copy"


def test_get_job() -> None:
    client, rec = make(
        ok(
            {
                "status": "SUCCESS",
                "job_id": JOB_ID,
                "job_type": "imsCopyImageInRegionJob",
                "begin_time": "2024-11-06T06:14:27.168Z",
                "end_time": "2024-11-06T06:16:38.446Z",
                "error_code": None,
                "fail_reason": None,
                "entities": {"image_name": "test", "image_id": "30e55148-deb9-4923-adb9-91618de16ba0"},
            }
        )
    )
    job = client.get_job(JOB_ID)
    assert str(rec.last.url) == f"{IMS}/v1/{PROJECT}/jobs/{JOB_ID}"
    assert job.succeeded and job.image_id == "30e55148-deb9-4923-adb9-91618de16ba0"


def test_get_job_progress() -> None:
    client, rec = make(ok({"status": "RUNNING", "job_id": JOB_ID, "entities": {"process_percent": 0.5}}))
    job = client.get_job_progress(JOB_ID)
    assert str(rec.last.url) == f"{IMS}/v1/cloudimages/job/{JOB_ID}"
    assert job.entities.process_percent == 0.5


def test_a_job_without_status_is_malformed() -> None:
    client, _ = make(ok({"job_id": JOB_ID}))
    with pytest.raises(CloudUnavailableError, match="malformed"):
        client.get_job(JOB_ID)


# -- KMS -------------------------------------------------------------------------------------------------------


def key(key_id: str, alias: str, state: str = "2") -> dict[str, str]:
    return {"key_id": key_id, "key_alias": alias, "key_state": state, "default_key_flag": "0"}


def test_list_keys_follows_next_marker_while_truncated() -> None:
    pages = [
        ok({"keys": ["k1"], "key_details": [key("k1", "a")], "next_marker": "1", "truncated": "true", "total": 2}),
        ok({"keys": ["k2"], "key_details": [key("k2", "b")], "next_marker": "", "truncated": "false", "total": 2}),
    ]
    client, rec = make(pages)
    assert [k.key_id for k in client.list_keys(key_state="2")] == ["k1", "k2"]
    assert str(rec.last.url) == f"{KMS}/v1.0/{PROJECT}/kms/list-keys"
    assert [json.loads(r.content) for r in rec.requests] == [
        {"limit": "1000", "key_state": "2"},
        {"limit": "1000", "marker": "1", "key_state": "2"},
    ]


def test_list_keys_accepts_a_boolean_truncated() -> None:
    client, rec = make(
        [
            ok({"key_details": [key("k1", "a")], "next_marker": "1", "truncated": True}),
            ok({"key_details": [], "truncated": False}),
        ]
    )
    assert len(client.list_keys()) == 1
    assert len(rec.requests) == 2


def test_list_keys_without_details_is_malformed() -> None:
    client, _ = make(ok({"keys": ["k1"]}))
    with pytest.raises(CloudUnavailableError, match="malformed"):
        client.list_keys()


def test_describe_key() -> None:
    client, rec = make(ok({"key_info": key(KEY_ID, "app-key", "3")}))
    found = client.describe_key(KEY_ID)
    assert found is not None and not found.enabled
    assert str(rec.last.url) == f"{KMS}/v1.0/{PROJECT}/kms/describe-key"
    assert json.loads(rec.last.content) == {"key_id": KEY_ID}


@pytest.mark.parametrize(
    "missing",
    [
        httpx.Response(400, json={"error": {"error_code": "KMS.0205", "error_msg": "Invalid key ID."}}),
        httpx.Response(404, json={"error": {"error_code": "KMS.0404", "error_msg": "Not found."}}),
    ],
)
def test_describe_key_not_found(missing: httpx.Response) -> None:
    client, _ = make(missing)
    assert client.describe_key(KEY_ID) is None


def test_describe_key_other_refusal() -> None:
    client, _ = make(httpx.Response(400, json={"error": {"error_code": "KMS.0201", "error_msg": "bad"}}))
    with pytest.raises(ImsRefusedError) as info:
        client.describe_key(KEY_ID)
    assert info.value.code == "KMS.0201"


def test_find_key_by_id_and_by_alias() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/describe-key"):
            return ok({"key_info": key(json.loads(request.content)["key_id"], "x")})
        return ok({"key_details": [key("k1", "app-key"), key("k2", "ims/default")], "truncated": "false"})

    client, rec = make(answer)
    by_id = client.find_key(KEY_ID)
    assert by_id is not None and by_id.key_id == KEY_ID
    assert rec.last.url.path.endswith("/describe-key")
    by_alias = client.find_key("ims/default")
    assert by_alias is not None and by_alias.key_id == "k2"
    assert rec.last.url.path.endswith("/list-keys")
    assert client.find_key("nope") is None


# -- error mapping and hooks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kind", "outcome"),
    [
        (gateway_error("APIGW.0308", 429), ThrottledError, "429"),
        (ims_error("IMG.0060"), ThrottledError, "IMG.0060"),
        (ims_error("IMG.0187"), ThrottledError, "IMG.0187"),
        (httpx.Response(500, text="boom"), CloudUnavailableError, "500"),
        (httpx.Response(503, json={"error": {"code": "IMG.0999", "message": "x"}}), CloudUnavailableError, "IMG.0999"),
        (gateway_error("APIGW.0301", 401), AuthenticationError, "401"),
        (gateway_error("APIGW.0302", 403), AuthenticationError, "403"),
        (ims_error("IMG.0130"), ImsRefusedError, "IMG.0130"),
        (httpx.Response(200, text="<html>"), CloudUnavailableError, "malformed"),
        (ok({"images": "nope"}), CloudUnavailableError, "malformed"),
    ],
)
def test_answers_map_to_typed_errors_and_outcomes(answer: httpx.Response, kind: type, outcome: str) -> None:
    hooks = RecordingHooks()
    client, _ = make(answer, hooks=hooks)
    with pytest.raises(kind) as info:
        client.list_images()
    assert type(info.value) is kind
    assert info.value.endpoint == "list_images"
    assert hooks.calls == [("before", "list_images"), ("after", "list_images", outcome)]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("IMG.0027", ReasonCode.IMAGE_NOT_FOUND),
        ("IMG.0046", ReasonCode.IMAGE_NOT_ACTIVE),
        ("IMG.0130", ReasonCode.FULL_ECS_IMAGE),
        ("IMG.0167", ReasonCode.ISO_IMAGE),
        ("IMG.0059", ReasonCode.IMAGE_TOO_LARGE),
        ("IMG.0095", ReasonCode.KEY_NOT_FOUND),
        ("IMG.0097", ReasonCode.KEY_DISABLED),
        ("IMG.0015", ReasonCode.QUOTA_EXCEEDED),
        ("IMG.0009", ReasonCode.NAME_EXISTS),
        ("IMG.0001", ReasonCode.IMS_REFUSED),
    ],
)
def test_copy_refusals_carry_their_reason(code: str, reason: ReasonCode) -> None:
    client, _ = make(ims_error(code))
    with pytest.raises(ImsRefusedError) as info:
        client.copy_image(IMAGE_ID, name="n")
    assert info.value.reason is reason
    assert info.value.code == code and info.value.request_id == "rid" and info.value.status_code == 400


def test_a_bare_404_on_copy_means_the_image_is_missing() -> None:
    client, _ = make(httpx.Response(404))
    with pytest.raises(ImsRefusedError) as info:
        client.copy_image(IMAGE_ID, name="n")
    assert info.value.reason is ReasonCode.IMAGE_NOT_FOUND


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (httpx.ReadTimeout, "timeout"),
        (httpx.WriteTimeout, "timeout"),
        (httpx.ConnectTimeout, "timeout"),
        (httpx.PoolTimeout, "timeout"),
        (httpx.ConnectError, "connection_error"),
        (httpx.RemoteProtocolError, "connection_error"),
        (httpx.ReadError, "connection_error"),
    ],
)
def test_transport_failures(exc: type[httpx.TransportError], outcome: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc("failed", request=request)

    hooks = RecordingHooks()
    client, _ = make(answer, hooks=hooks)
    with pytest.raises(CloudUnavailableError) as info:
        client.copy_image(IMAGE_ID, name="n")
    assert info.value.endpoint == "copy"
    assert isinstance(info.value.__cause__, exc)
    assert hooks.calls == [("before", "copy"), ("after", "copy", outcome)]


def test_a_local_throttle_sends_nothing() -> None:
    hooks = RecordingHooks(refuse=True)
    client, rec = make(ok({"job_id": JOB_ID}), hooks=hooks)
    with pytest.raises(ThrottledError) as info:
        client.copy_image(IMAGE_ID, name="n")
    assert info.value.retry_after == 0.5
    assert rec.requests == []
    assert hooks.calls == [("before", "copy")]


@pytest.mark.parametrize(
    ("call", "endpoint"),
    [
        (lambda c: c.list_images(), "list_images"),
        (lambda c: c.get_image(IMAGE_ID), "show_image"),
        (lambda c: c.get_job(JOB_ID), "job"),
        (lambda c: c.get_job_progress(JOB_ID), "job_progress"),
        (lambda c: c.list_keys(), "list_keys"),
        (lambda c: c.describe_key(KEY_ID), "describe_key"),
        (lambda c: c.copy_image(IMAGE_ID, name="n"), "copy"),
        (lambda c: c.copy_shared_image(IMAGE_ID, name="n"), "copy"),
        (lambda c: c.update_member_status([IMAGE_ID], "accepted"), "update_members"),
    ],
)
def test_endpoint_names(call: Callable[[ImsClient], object], endpoint: str) -> None:
    hooks = RecordingHooks()
    client, _ = make(httpx.Response(500), hooks=hooks)
    with pytest.raises(CloudUnavailableError):
        call(client)
    assert hooks.calls[0] == ("before", endpoint)


# -- real sockets: the timeouts are always in force ------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections (via the backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_hanging_server_times_out_within_the_read_timeout(silent_server: str) -> None:
    account = aksk_account(ims_endpoint=silent_server)
    with ImsClient(account, connect_timeout=0.5, read_timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(CloudUnavailableError) as info:
            client.get_job(JOB_ID)
    assert time.monotonic() - started < 2.0
    assert "timed out" in str(info.value)


def test_a_refused_connection_is_not_applied() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        account = aksk_account(ims_endpoint=f"http://127.0.0.1:{port}")
        with (
            ImsClient(account, connect_timeout=0.5, read_timeout=0.5) as client,
            pytest.raises(CloudUnavailableError) as info,
        ):
            client.get_image(IMAGE_ID)
    assert "connection failed" in str(info.value)


def test_get_quota_reads_the_image_resource() -> None:
    resources = [{"type": "image_member", "used": 1, "quota": 9}, {"type": "image", "used": "48", "quota": 50}]
    body = {"quotas": {"resources": resources}}
    client, rec = make(ok(body))
    quota = client.get_quota()
    assert (quota.used, quota.quota, quota.headroom) == (48, 50, 2)
    assert str(rec.last.url) == f"{IMS}/v1/cloudimages/quota"


# -- cross-region copy, tags, members, project look-up -----------------------------------------------------------


def test_cross_region_copy_request() -> None:
    client, rec = make(ok({"job_id": JOB_ID}))
    job = client.copy_image_cross_region(IMAGE_ID, name="copy_cn-north-4_web", region="cn-south-1",
                                         project_name="cn-south-1", agency_name="ims_admin_agency")  # fmt: skip
    assert job == JOB_ID and rec.last.method == "POST"
    assert rec.last.url == f"{IMS}/v1/cloudimages/{IMAGE_ID}/cross_region_copy"
    assert json.loads(rec.last.content) == {
        "name": "copy_cn-north-4_web", "region": "cn-south-1", "project_name": "cn-south-1",
        "agency_name": "ims_admin_agency",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        ("IMG.0149", ThrottledError, None),  # IMS's cross-region copies are full, like IMG.0060 in-region
        ("IMG.0143", ImsRefusedError, ReasonCode.ENCRYPTED_CROSS_REGION),
        ("IMG.0151", ImsRefusedError, ReasonCode.AGENCY_NOT_PERMITTED),
        ("IMG.0145", ImsRefusedError, ReasonCode.TARGET_PROJECT_NOT_FOUND),
        ("IMG.0142", ImsRefusedError, ReasonCode.TARGET_REGION_INVALID),
        ("IMG.0146", ImsRefusedError, ReasonCode.IMAGE_TOO_LARGE),
    ],
)
def test_cross_region_refusals(code: str, kind: type, reason: ReasonCode | None) -> None:
    client, _ = make(ims_error(code))
    with pytest.raises(kind) as info:
        client.copy_image_cross_region(IMAGE_ID, name="c", region="r", project_name="r", agency_name="a")
    assert getattr(info.value, "reason", None) is reason and info.value.code == code


def test_tag_image_takes_a_204_and_reads_tags_back() -> None:
    client, rec = make([httpx.Response(204), ok({"tags": [{"key": "team", "value": "web"}, {"key": "e"}]})])
    client.tag_image(IMAGE_ID, {"team": "web", "e": ""})
    assert rec.last.url == f"{IMS}/v2/{PROJECT}/images/{IMAGE_ID}/tags/action"
    assert json.loads(rec.last.content) == {
        "action": "create", "tags": [{"key": "team", "value": "web"}, {"key": "e", "value": ""}],
    }  # fmt: skip
    assert client.image_tags(IMAGE_ID) == {"team": "web", "e": ""}
    assert rec.last.url == f"{IMS}/v2/{PROJECT}/images/{IMAGE_ID}/tags"


def test_members_are_added_by_a_job_and_listed_page_by_page() -> None:
    member = {"member_id": "a" * 32, "status": "pending", "image_id": IMAGE_ID}
    pages = [
        ok({"job_id": JOB_ID}),
        ok({"members": [member], "page_info": {"current_count": 1, "next_marker": "YWFh"}}),
        ok({"members": [{**member, "member_id": "b" * 32, "status": "accepted"}], "page_info": {}}),
    ]
    client, rec = make(pages)
    assert client.add_members([IMAGE_ID], ["a" * 32, "b" * 32]) == JOB_ID
    assert json.loads(rec.requests[0].content) == {"images": [IMAGE_ID], "projects": ["a" * 32, "b" * 32]}
    members = client.image_members(IMAGE_ID)
    assert [(m.member_id, m.status) for m in members] == [("a" * 32, "pending"), ("b" * 32, "accepted")]
    first, second = rec.requests[1:]
    assert first.url.path == f"/v1/{PROJECT}/cloudimages/{IMAGE_ID}/members" and "marker" not in first.url.params
    assert second.url.params["marker"] == "YWFh"
    with pytest.raises(ImsRefusedError) as info:
        make(ims_error("IMG.0098"))[0].add_members([IMAGE_ID], ["a" * 32])
    assert info.value.reason is ReasonCode.NOT_SHAREABLE_ENCRYPTED


# -- the receiving side of a share: accept, list, copy under its own key (ims-contract.md §12) ----------------------

OWNER = "0123456789abcdef0123456789abcdef"


def test_a_member_answers_a_share_with_a_job_naming_its_own_project() -> None:
    results = [{"image_id": IMAGE_ID, "project_id": PROJECT, "status": "success"}, "not a result"]
    done = {"status": "SUCCESS", "job_type": "imsUpdateImageMembersJob", "entities": {"results": results}}
    client, rec = make([ok({"job_id": JOB_ID}), ok({"job_id": "f" * 32}), ok(done)])
    assert client.update_member_status([IMAGE_ID], "accepted") == JOB_ID
    assert (rec.last.method, rec.last.url) == ("PUT", f"{IMS}/v1/cloudimages/members")
    assert rec.last.headers["X-Project-Id"] == PROJECT
    assert json.loads(rec.last.content) == {"images": [IMAGE_ID], "project_id": PROJECT, "status": "accepted"}
    client.update_member_status([IMAGE_ID], "rejected", vault_id="v-1")
    assert json.loads(rec.last.content) == {
        "images": [IMAGE_ID], "project_id": PROJECT, "status": "rejected", "vault_id": "v-1",
    }  # fmt: skip
    # The answer is a member job, polled like a copy: its results say how each pair went.
    job = client.get_job(JOB_ID)
    assert job.succeeded and job.image_id is None
    assert [(r.image_id, r.project_id, r.status) for r in job.entities.results] == [(IMAGE_ID, PROJECT, "success")]
    with pytest.raises(ValueError, match="accepted or rejected"):
        client.update_member_status([IMAGE_ID], "pending")
    assert len(rec.requests) == 3  # nothing sent for the bad status


def test_shared_images_are_other_projects_images_in_the_member_status_asked() -> None:
    mine = image("b" * 8, owner=PROJECT, visibility="shared")  # shared out by this project: not shared with it
    theirs = image("a" * 8, owner=OWNER, visibility="shared", __imagetype="shared")
    later = {**theirs, "id": "c" * 8}
    client, rec = make([ok({"images": [theirs, mine]}), ok({"images": [later]})])
    assert [i.id for i in client.shared_images(page_size=2)] == [theirs["id"], later["id"]]
    first, second = rec.requests
    assert dict(first.url.params) == {"visibility": "shared", "member_status": "accepted", "limit": "2"}
    assert second.url.params["marker"] == mine["id"]  # paging goes on past the ones left out
    pending, pending_rec = make(ok({"images": [theirs]}))
    assert [i.owner for i in pending.shared_images("pending")] == [OWNER]
    assert pending_rec.last.url.params["member_status"] == "pending"
    with pytest.raises(ValueError, match="member_status"):
        next(pending.shared_images("everything"))


def test_a_shared_copy_is_the_members_in_region_copy_under_its_own_key_without_enterprise_project() -> None:
    client, rec = make(ok({"job_id": JOB_ID}))
    assert client.copy_shared_image(IMAGE_ID, name="golden", cmk_id=KEY_ID) == JOB_ID
    assert (rec.last.method, rec.last.url) == ("POST", f"{IMS}/v1/cloudimages/{IMAGE_ID}/copy")
    assert json.loads(rec.last.content) == {"name": "golden", "cmk_id": KEY_ID}
    client.copy_shared_image(IMAGE_ID, name="golden", description="d")
    assert json.loads(rec.last.content) == {"name": "golden", "description": "d"}


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("IMG.0196", ReasonCode.SHARE_NOT_ACCEPTED),
        ("IMG.0197", ReasonCode.SHARED_COPY_KEY_REFUSED),
        ("IMG.0155", ReasonCode.ENTERPRISE_PROJECT_REFUSED),
        ("IMG.0027", ReasonCode.IMAGE_NOT_FOUND),  # no longer shared, or deleted by its owner
    ],
)
def test_shared_copy_refusals_are_permanent_with_their_reason(code: str, reason: ReasonCode) -> None:
    client, _ = make(ims_error(code))
    with pytest.raises(ImsRefusedError) as info:
        client.copy_shared_image(IMAGE_ID, name="n", cmk_id=KEY_ID)
    assert (info.value.reason, info.value.code, info.value.endpoint) == (reason, code, "copy")


@pytest.mark.parametrize(
    ("answer", "kind", "reason"),
    [
        (ims_error("IMG.0027"), ImsRefusedError, ReasonCode.IMAGE_NOT_FOUND),  # not shared with it (any more)
        (ims_error("IMG.0067"), ImsRefusedError, ReasonCode.IMS_REFUSED),  # not its own project
        (gateway_error("APIGW.0308", 429), ThrottledError, None),
        (httpx.Response(503), CloudUnavailableError, None),
    ],
)
def test_answering_a_share_fails_typed(answer: httpx.Response, kind: type, reason: ReasonCode | None) -> None:
    client, _ = make(answer)
    with pytest.raises(kind) as info:
        client.update_member_status([IMAGE_ID], "accepted")
    assert getattr(info.value, "reason", None) is reason and info.value.endpoint == "update_members"


def test_project_ids_from_iam_under_aksk_are_looked_up_unscoped() -> None:
    found = ok({"projects": [{"id": "f" * 32, "name": "cn-south-1"}]})
    client, rec = make([found, ok({"projects": []})])
    iam = "https://iam.cn-north-4.myhuaweicloud.com"
    assert client.find_project_id("cn-south-1", iam) == "f" * 32
    assert rec.last.url == f"{iam}/v3/projects?name=cn-south-1"
    assert "X-Project-Id" not in rec.last.headers and "x-project-id" not in rec.last.headers["Authorization"]
    assert client.find_project_id("cn-south-1_none", iam) is None


def test_project_ids_of_an_iam_user_come_from_a_token_scoped_by_name() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        scope = json.loads(request.content)["auth"]["scope"]["project"]
        if scope.get("name") == "cn-south-1":
            body = {"token": {"expires_at": "2099-01-01T00:00:00Z", "project": {"id": "f" * 32}}}
            return httpx.Response(201, headers={"X-Subject-Token": "tok"}, json=body)
        return httpx.Response(400, json={"error": {"code": 400, "message": "The project does not exist."}})

    client, rec = make(answer, token_account())
    assert client.find_project_id("cn-south-1", "https://iam.example") == "f" * 32
    sent = json.loads(rec.last.content)["auth"]["scope"]["project"]
    assert sent == {"name": "cn-south-1", "domain": {"name": "d"}}
    assert client.find_project_id("nowhere", "https://iam.example") is None


def test_authenticate_obtains_an_iam_users_token_once() -> None:
    body = {"token": {"expires_at": "2099-01-01T00:00:00Z"}}
    token = httpx.Response(201, headers={"X-Subject-Token": "tok"}, json=body)
    client, rec = make([token, ok({"images": []})], token_account())
    client.authenticate()
    client.authenticate()  # cached: no second request
    assert [r.url.path for r in rec.requests] == ["/v3/auth/tokens"]
    client.list_images()
    assert rec.last.headers["X-Auth-Token"] == "tok"
    aksk, aksk_rec = make(ok({}))
    aksk.authenticate()
    assert aksk_rec.requests == []
