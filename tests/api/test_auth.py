"""Bearer tokens over HTTP: what a client without a valid one sees (tests/api/test_principals.py: whose token)."""

from __future__ import annotations

import httpx


def test_missing_wrong_or_malformed_credentials_get_401(api) -> None:
    path = f"/v1/batches/{'0' * 32}"
    cases = [
        {},
        {"Authorization": "Bearer wrong-token-zzzz"},
        {"Authorization": f"Basic {api.token}"},
        {"Authorization": "Bearer"},
        {"Authorization": b"Bearer \xff\xfe"},
    ]
    for headers in cases:
        response = httpx.get(api.url + path, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"] == "missing or invalid bearer token"
        assert response.headers["content-type"] == "application/problem+json"
        assert "wrong-token-zzzz" not in response.text and api.token not in response.text


def test_any_configured_token_is_accepted(api) -> None:
    for token in (api.token, api.other_token):
        with api.client(token) as c:
            # 404: past authentication, the batch simply does not exist.
            assert c.get(f"/v1/batches/{'0' * 32}").status_code == 404


def test_open_endpoints_need_no_token(api) -> None:
    for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
        assert httpx.get(api.url + path).status_code == 200, path
    assert httpx.get(api.url + "/readyz").status_code in (200, 503)
