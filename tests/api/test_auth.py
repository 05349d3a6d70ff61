"""Bearer tokens: constant-time comparison against every token, and what clients see over HTTP."""

from __future__ import annotations

import hmac

import httpx
from pydantic import SecretStr

from api import auth
from api.auth import token_matches

TOKENS = [SecretStr("first-token-aaaa"), SecretStr("second-token-bbbb"), SecretStr("third-token-cccc")]


def test_every_token_is_compared_in_constant_time_even_after_a_match(monkeypatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert token_matches("first-token-aaaa", TOKENS)
    assert len(calls) == len(TOKENS)
    calls.clear()
    assert not token_matches("first-token-aaab", TOKENS)
    assert len(calls) == len(TOKENS)


def test_non_ascii_and_empty_tokens_are_refused_not_errors() -> None:
    assert not token_matches("tökén", TOKENS)
    assert not token_matches("", TOKENS)
    assert not token_matches("first-token-aaaa", [])


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
