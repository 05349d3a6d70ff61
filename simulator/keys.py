"""KMS key queries: list-keys with its string ``limit``/``marker`` paging, and describe-key (docs/simulator.md)."""

from __future__ import annotations

import json
from typing import Any

from simulator.errors import KmsError
from simulator.state import Project

DEFAULT_LIMIT = 2000


def parse_kms_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise KmsError("KMS.0202", "Invalid JSON format of the request message.") from exc
    if not isinstance(body, dict):
        raise KmsError("KMS.0202", "Invalid JSON format of the request message.")
    return body


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise KmsError("KMS.0308", "Invalid parameter.") from exc
    if number < 0:
        raise KmsError("KMS.0308", "Invalid parameter.")
    return number


def list_keys(project: Project, raw: bytes) -> dict[str, Any]:
    body = parse_kms_body(raw)
    limit = _int_field(body, "limit", DEFAULT_LIMIT)
    # The marker is the offset of the next page, as a string.
    offset = _int_field(body, "marker", 0)
    state = body.get("key_state")
    spec = body.get("key_spec") or "AES_256"
    matching = [
        key
        for key in project.keys.values()
        if (state in (None, "") or key["key_state"] == str(state)) and (spec == "ALL" or key["key_spec"] == spec)
    ]
    page = matching[offset : offset + limit]
    truncated = offset + limit < len(matching)
    return {
        "keys": [key["key_id"] for key in page],
        "key_details": page,
        "next_marker": str(offset + limit) if truncated else "",
        "truncated": "true" if truncated else "false",
        "total": len(matching),
    }


def describe_key(project: Project, raw: bytes) -> dict[str, Any]:
    key_id = parse_kms_body(raw).get("key_id")
    if not key_id:
        raise KmsError("KMS.0204", "Parameters missing in the request message.")
    key = project.keys.get(key_id) if isinstance(key_id, str) else None
    if key is None:
        # Simulator choice: an unknown (or another project's) key is 400 KMS.0205, as for a malformed ID.
        raise KmsError("KMS.0205", "Invalid key ID.")
    return {"key_info": key}
