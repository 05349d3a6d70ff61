"""IAM token auth: one token per process, early refresh, one renewal on a refused cached token."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr

from worker.errors import AuthenticationError, CloudUnavailableError, ThrottledError
from worker.ims.hooks import ClientHooks
from worker.ims.token import TokenAuth

PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
PASSWORD = "s3cret-Passw0rd"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
API = "https://ims.example/v2/cloudimages"


@dataclass
class FakeCloud:
    """IAM issuing numbered tokens, and an API answering with scripted statuses."""

    api_answers: list[httpx.Response] = field(default_factory=list)
    token_answer: httpx.Response | None = None
    lifetime: timedelta = timedelta(hours=24)
    clock: datetime = START
    issued: int = 0
    iam_requests: list[httpx.Request] = field(default_factory=list)
    api_tokens: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            self.iam_requests.append(request)
            if self.token_answer is not None:
                return self.token_answer
            self.issued += 1
            expires = (self.clock + self.lifetime).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return httpx.Response(
                201,
                headers={"X-Subject-Token": f"token-{self.issued}"},
                json={"token": {"expires_at": expires, "methods": ["password"]}},
            )
        self.api_tokens.append(request.headers["X-Auth-Token"])
        return self.api_answers.pop(0) if self.api_answers else httpx.Response(200, json={"images": []})


class RecordingHooks(ClientHooks):
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def before_request(self, endpoint: str) -> None:
        self.calls.append(("before", endpoint))

    def after_response(self, endpoint: str, outcome: str) -> None:
        self.calls.append(("after", endpoint, outcome))


def _client(cloud: FakeCloud, hooks: ClientHooks | None = None, margin: float = 900.0) -> httpx.Client:
    auth = TokenAuth(
        "https://iam.example",
        "IAMUser",
        SecretStr(PASSWORD),
        "IAMDomain",
        PROJECT,
        hooks=hooks,
        refresh_margin=margin,
        clock=lambda: cloud.clock,
    )
    return httpx.Client(auth=auth, transport=httpx.MockTransport(cloud), timeout=httpx.Timeout(3.0, connect=1.0))


def _refused(code: str, status: int = 401) -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "error_msg": "m", "request_id": "r"})


def test_token_request_follows_the_contract() -> None:
    cloud = FakeCloud()
    _client(cloud).get(API)
    (request,) = cloud.iam_requests
    assert request.method == "POST"
    assert str(request.url) == "https://iam.example/v3/auth/tokens?nocatalog=true"
    assert request.headers["Content-Type"] == "application/json;charset=utf8"
    assert json.loads(request.content) == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "IAMUser", "password": PASSWORD, "domain": {"name": "IAMDomain"}}},
            },
            "scope": {"project": {"id": PROJECT}},
        }
    }
    assert request.extensions["timeout"] == {"connect": 1.0, "read": 3.0, "write": 3.0, "pool": 3.0}


def test_token_is_cached_and_sent_as_x_auth_token() -> None:
    cloud = FakeCloud()
    client = _client(cloud)
    for _ in range(3):
        assert client.get(API).status_code == 200
    assert cloud.issued == 1
    assert cloud.api_tokens == ["token-1"] * 3


def test_token_is_refreshed_before_it_expires() -> None:
    cloud = FakeCloud(lifetime=timedelta(hours=1))
    client = _client(cloud, margin=600)
    client.get(API)
    cloud.clock = START + timedelta(minutes=49)
    client.get(API)
    assert cloud.issued == 1
    cloud.clock = START + timedelta(minutes=50)
    client.get(API)
    assert cloud.api_tokens == ["token-1", "token-1", "token-2"]


@pytest.mark.parametrize("code", ["APIGW.0307", "APIGW.0301"])
def test_a_refused_cached_token_is_renewed_once_and_the_request_replayed(code: str) -> None:
    cloud = FakeCloud()
    client = _client(cloud)
    client.get(API)
    cloud.api_answers = [_refused(code)]
    response = client.get(API)
    assert response.status_code == 200
    assert cloud.api_tokens == ["token-1", "token-1", "token-2"]


def test_a_second_refusal_is_returned_not_retried_again() -> None:
    cloud = FakeCloud()
    client = _client(cloud)
    client.get(API)
    cloud.api_answers = [_refused("APIGW.0307"), _refused("APIGW.0307")]
    assert client.get(API).status_code == 401
    assert cloud.issued == 2


def test_a_fresh_token_refused_is_not_renewed() -> None:
    cloud = FakeCloud(api_answers=[_refused("APIGW.0301")])
    assert _client(cloud).get(API).status_code == 401
    assert cloud.issued == 1


def test_other_refusals_do_not_renew() -> None:
    cloud = FakeCloud()
    client = _client(cloud)
    client.get(API)
    cloud.api_answers = [_refused("APIGW.0302", status=403)]
    assert client.get(API).status_code == 403
    assert cloud.issued == 1


def test_iam_refusal_is_an_authentication_error_without_the_password() -> None:
    refused = httpx.Response(
        401, json={"error": {"code": 401, "message": f"bad password {PASSWORD}", "title": "Unauthorized"}}
    )
    cloud = FakeCloud(token_answer=refused)
    with pytest.raises(AuthenticationError) as info:
        _client(cloud).get(API)
    assert info.value.endpoint == "token"
    assert PASSWORD not in str(info.value)
    assert cloud.api_tokens == []


def test_iam_throttling_is_retryable() -> None:
    cloud = FakeCloud(token_answer=_refused("APIGW.0308", status=429))
    with pytest.raises(ThrottledError):
        _client(cloud).get(API)


def test_an_answer_without_the_token_header_is_malformed() -> None:
    cloud = FakeCloud(token_answer=httpx.Response(201, json={"token": {}}))
    with pytest.raises(CloudUnavailableError, match="X-Subject-Token"):
        _client(cloud).get(API)


def test_an_unreadable_expiry_falls_back_to_a_short_life() -> None:
    cloud = FakeCloud()
    cloud.token_answer = httpx.Response(201, headers={"X-Subject-Token": "t"}, content=b"not json")
    client = _client(cloud, margin=0)
    client.get(API)
    cloud.clock = START + timedelta(minutes=59)
    client.get(API)
    assert len(cloud.iam_requests) == 1
    cloud.clock = START + timedelta(hours=1)
    client.get(API)
    assert len(cloud.iam_requests) == 2


def test_hooks_see_the_token_call() -> None:
    cloud = FakeCloud()
    hooks = RecordingHooks()
    _client(cloud, hooks=hooks).get(API)
    assert hooks.calls == [("before", "token"), ("after", "token", "201")]


def test_the_token_is_a_secret_value() -> None:
    cloud = FakeCloud()
    client = _client(cloud)
    client.get(API)
    assert isinstance(client.auth, TokenAuth)
    assert set(client.auth.secret_values()) == {PASSWORD, "token-1"}
