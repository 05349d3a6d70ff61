"""Copy-request body rules (docs/simulator.md, the order of copy checks), checked without HTTP."""

from __future__ import annotations

import json

import pytest

from simulator.errors import ImsError
from simulator.replication import parse_copy_body


def code_of(body: object | bytes) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ImsError) as caught:
        parse_copy_body(raw)
    return caught.value.code


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "IMG.0007"),
        (b"  \n", "IMG.0007"),
        (b"{not json", "IMG.0001"),
        ([], "IMG.0001"),
        ("a string", "IMG.0001"),
        ({}, "IMG.0013"),
        ({"name": None}, "IMG.0013"),
        ({"name": ""}, "IMG.0013"),
        ({"name": 12}, "IMG.0003"),
        ({"name": "x" * 129}, "IMG.0002"),
        ({"name": " lead"}, "IMG.0003"),
        ({"name": "trail "}, "IMG.0003"),
        ({"name": "bad/slash"}, "IMG.0003"),
        ({"name": "tab\there"}, "IMG.0003"),
        ({"name": "émoji"}, "IMG.0003"),
        ({"name": "ok", "description": "d" * 1025}, "IMG.0004"),
        ({"name": "ok", "description": "a<b"}, "IMG.0054"),
        ({"name": "ok", "description": "a>b"}, "IMG.0054"),
        ({"name": "ok", "description": "line\nbreak"}, "IMG.0054"),
        ({"name": "ok", "description": "carriage\rreturn"}, "IMG.0054"),
        ({"name": "ok", "description": 5}, "IMG.0054"),
        ({"name": "ok", "cmk_id": 5}, "IMG.0001"),
        # Order: the name is checked before the description.
        ({"name": " bad", "description": "<"}, "IMG.0003"),
    ],
)
def test_refusals(body: object, code: str) -> None:
    assert code_of(body) == code


@pytest.mark.parametrize("name", ["a", "x" * 128, "copy_cn-north-4_web.v2", "with inner space", "镜像副本-1"])
def test_accepted_names(name: str) -> None:
    request = parse_copy_body(json.dumps({"name": name}).encode())
    assert request.name == name and request.description == "" and request.cmk_id is None
    assert request.enterprise_project_id == "0"


def test_optional_fields() -> None:
    body = {"name": "n", "description": "d" * 1024, "cmk_id": "k", "enterprise_project_id": "e"}
    request = parse_copy_body(json.dumps(body).encode())
    assert (request.description, request.cmk_id, request.enterprise_project_id) == ("d" * 1024, "k", "e")
    assert parse_copy_body(b'{"name": "n", "cmk_id": ""}').cmk_id is None
