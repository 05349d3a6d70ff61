"""KMS: list-keys and describe-key, project in the path."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.context import Simulator
from simulator.gateway import Call, api_route
from simulator.keys import describe_key, list_keys


def list_keys_handler(call: Call) -> Response:
    assert call.project is not None
    return JSONResponse(list_keys(call.project, call.body))


def describe_key_handler(call: Call) -> Response:
    assert call.project is not None
    return JSONResponse(describe_key(call.project, call.body))


def routes(sim: Simulator) -> list[Route]:
    return [
        api_route(sim, "/v1.0/{project_id}/kms/list-keys", list_keys_handler, name="list_keys", method="POST"),
        api_route(sim, "/v1.0/{project_id}/kms/describe-key", describe_key_handler, name="describe_key", method="POST"),
    ]
