"""IMS image members: bulk add, remove and accept/reject as jobs; member lists and views (v1 and native)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.context import Simulator
from simulator.gateway import Call, api_route
from simulator.state import Project


def _project(call: Call) -> Project:
    assert call.project is not None  # authenticated routes always carry one
    return call.project


def add_members_handler(call: Call) -> Response:
    return JSONResponse({"job_id": call.sim.sharing.add(_project(call), call.body, call.now).job_id})


def delete_members_handler(call: Call) -> Response:
    return JSONResponse({"job_id": call.sim.sharing.remove(_project(call), call.body, call.now).job_id})


def update_members_handler(call: Call) -> Response:
    return JSONResponse({"job_id": call.sim.sharing.update(_project(call), call.body, call.now).job_id})


def list_members_handler(call: Call) -> Response:
    params = call.request.path_params
    return JSONResponse(call.sim.sharing.page(_project(call), params["image_id"], call.request.query_params))


def show_member_handler(call: Call) -> Response:
    params = call.request.path_params
    return JSONResponse(call.sim.sharing.member(_project(call), params["image_id"], params["member_id"]))


def update_member_handler(call: Call) -> Response:
    params = call.request.path_params
    return JSONResponse(
        call.sim.sharing.update_one(_project(call), params["image_id"], params["member_id"], call.body, call.now)
    )


def routes(sim: Simulator) -> list[Route]:
    members = "/v1/cloudimages/members"
    return [
        api_route(sim, members, add_members_handler, name="add_members", method="POST"),
        api_route(sim, members, delete_members_handler, name="delete_members", method="DELETE"),
        api_route(sim, members, update_members_handler, name="update_members", method="PUT"),
        api_route(
            sim,
            "/v1/{project_id}/cloudimages/{image_id}/members",
            list_members_handler,
            name="list_members",
            method="GET",
        ),
        api_route(
            sim,
            "/v1/{project_id}/cloudimages/{image_id}/members/{member_id}",
            show_member_handler,
            name="show_member",
            method="GET",
        ),
        api_route(sim, "/v2/images/{image_id}/members", list_members_handler, name="glance_list_members", method="GET"),
        api_route(
            sim,
            "/v2/images/{image_id}/members/{member_id}",
            show_member_handler,
            name="glance_show_member",
            method="GET",
        ),
        api_route(
            sim,
            "/v2/images/{image_id}/members/{member_id}",
            update_member_handler,
            name="glance_update_member",
            method="PUT",
        ),
    ]
