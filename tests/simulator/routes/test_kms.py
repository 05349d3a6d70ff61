"""KMS list-keys and describe-key over HTTP (https://support.huaweicloud.com/intl/en-us/api-dew/ListKeys.html)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def client(sim: Callable[..., Any]) -> Any:
    return sim().client()


def list_keys(client: Any, body: Any) -> dict[str, Any]:
    response = client.post(f"/v1.0/{client.project}/kms/list-keys", body)
    assert response.status_code == 200, response.text
    return response.json()


def test_list_keys_shape_and_default_key(client: Any) -> None:
    body = list_keys(client, {})
    assert set(body) == {"keys", "key_details", "next_marker", "truncated", "total"}
    assert body["total"] == 5 and body["truncated"] == "false" and body["next_marker"] == ""
    assert body["keys"] == [key["key_id"] for key in body["key_details"]]
    default = body["key_details"][0]
    assert default["key_alias"] == "ims/default" and default["default_key_flag"] == "1"
    assert default["key_state"] == "2" and default["creation_date"].isdigit()
    states = sorted(key["key_state"] for key in body["key_details"])
    assert states == ["2", "2", "2", "3", "4"]


def test_paging_with_string_limit_and_marker(client: Any) -> None:
    seen, marker = [], None
    while True:
        body = list_keys(client, {"limit": "2", **({"marker": marker} if marker else {})})
        seen += body["keys"]
        if body["truncated"] == "false":
            break
        marker = body["next_marker"]
    assert len(seen) == len(set(seen)) == 5


def test_state_filter_and_spec(client: Any) -> None:
    assert [k["key_alias"] for k in list_keys(client, {"key_state": "3"})["key_details"]] == ["disabled-key"]
    assert list_keys(client, {"key_state": "2"})["total"] == 3
    assert list_keys(client, {"key_spec": "ALL"})["total"] == 5
    assert list_keys(client, {"key_spec": "RSA_2048"})["total"] == 0


def test_describe_key(client: Any) -> None:
    key = list_keys(client, {})["key_details"][2]
    response = client.post(f"/v1.0/{client.project}/kms/describe-key", {"key_id": key["key_id"]})
    assert response.status_code == 200 and response.json() == {"key_info": key}


KMS_ERRORS = [
    ("describe-key", {"key_id": "bd66288c-9081-460a-8227-4cbd0c814cb4"}, "KMS.0205"),
    ("describe-key", {}, "KMS.0204"),
    ("describe-key", "not an object", "KMS.0202"),
    ("list-keys", {"limit": "many"}, "KMS.0308"),
]


def test_kms_errors(client: Any) -> None:
    for path, body, code in KMS_ERRORS:
        response = client.post(f"/v1.0/{client.project}/kms/{path}", body)
        assert response.status_code == 400, (path, body)
        assert response.json()["error"]["error_code"] == code and response.json()["error"]["error_msg"]
