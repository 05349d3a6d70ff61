"""The metadata service's temporary credentials, and the gateway's check of their security token: accepted with
the token they were issued with, refused without it, with another's, or once expired (docs/simulator.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from simulator.errors import AK_EXPIRED, AUTH_FAILED

TOKEN_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
LIFETIME = 60.0


def _issue(server: Any) -> dict[str, str]:
    response = server.plain.get("/openstack/latest/securitykey")
    assert response.status_code == 200, response.text
    return response.json()["credential"]


def _client(server: Any, credential: dict[str, str], token: str | None = "") -> Any:
    security_token = credential["securitytoken"] if token == "" else token
    return server.client(ak=credential["access"], sk=credential["secret"], security_token=security_token)


def _refused(response: Any, message: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error_code"] == "APIGW.0301" and response.json()["error_msg"] == message


@pytest.fixture
def server(app_sim: Callable[..., Any]) -> Any:
    return app_sim(temporary_credentials_seconds=LIFETIME)


def test_each_read_issues_new_credentials_in_the_sdk_shape(server: Any) -> None:
    first, second = _issue(server), _issue(server)
    assert set(first) == {"access", "secret", "securitytoken", "expires_at"}
    assert first["access"] != second["access"] and first["securitytoken"] != second["securitytoken"]
    assert re.fullmatch(r"[A-Z0-9]{20}", first["access"]) and len(first["secret"]) == 40
    assert re.fullmatch(TOKEN_TIME, first["expires_at"])
    expires = datetime.strptime(first["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert expires.timestamp() == pytest.approx(server.clock() + LIFETIME, abs=1e-3)
    assert server.introspect("stats")["by_endpoint"]["securitykey"] == {"200": 2}


def test_a_temporary_ak_is_accepted_with_its_security_token(server: Any) -> None:
    credential = _issue(server)
    client = _client(server, credential)
    assert len(client.images()) == 10
    assert client.copy_named("centos-7-app", "copied with temporary credentials")


def test_a_temporary_ak_without_its_token_or_with_another_is_refused(server: Any) -> None:
    credential, other = _issue(server), _issue(server)
    _refused(_client(server, credential, token=None).get("/v2/cloudimages"), AUTH_FAILED)
    _refused(_client(server, credential, token=other["securitytoken"]).get("/v2/cloudimages"), AUTH_FAILED)
    # The other credentials themselves are fine.
    assert _client(server, other).get("/v2/cloudimages").status_code == 200


def test_an_expired_temporary_ak_is_refused_as_expired(server: Any) -> None:
    credential = _issue(server)
    client = _client(server, credential)
    server.clock.advance(LIFETIME - 1)
    assert client.get("/v2/cloudimages").status_code == 200
    server.clock.advance(1)
    _refused(client.get("/v2/cloudimages"), AK_EXPIRED)
    # New ones from the metadata service work again.
    assert _client(server, _issue(server)).get("/v2/cloudimages").status_code == 200


def test_a_permanent_ak_ignores_a_security_token(server: Any) -> None:
    assert server.client(security_token="whatever").get("/v2/cloudimages").status_code == 200


def test_every_credential_handed_out_is_listed_whole_for_the_secret_scan(server: Any) -> None:
    first, second = _issue(server), _issue(server)
    listed = server.plain.get("/_sim/temporary-credentials").json()["credentials"]
    assert listed == [{k: c[k] for k in ("access", "secret", "securitytoken")} for c in (first, second)]
