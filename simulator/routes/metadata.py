"""The ECS metadata service's temporary credentials, ``GET /openstack/latest/securitykey``: the AK/SK of the
server's agency, with its security token and expiry, in the shape the official SDK's ``MetadataAccessor`` reads
(ims-contract.md §12; https://support.huaweicloud.com/intl/en-us/api-iam/iam_04_0002.html for the credential)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.context import Simulator
from simulator.gateway import Call, api_route
from simulator.timefmt import token_time


def security_key_handler(call: Call) -> Response:
    key = call.sim.temporary_keys.issue(call.now)
    credential = {
        "access": key.access_key,
        "secret": key.secret_key,
        "securitytoken": key.security_token,
        "expires_at": token_time(key.expires_at),
    }
    return JSONResponse({"credential": credential})


def routes(sim: Simulator) -> list[Route]:
    return [
        api_route(
            sim,
            "/openstack/latest/securitykey",
            security_key_handler,
            name="securitykey",
            method="GET",
            authenticated=False,
        )
    ]
