"""IMS: image list, view and delete, tags, in-region copy (v1 and v2.1), cross-region copy, job status and progress,
quota."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.context import Simulator
from simulator.errors import ImsError
from simulator.gateway import Call, api_route
from simulator.jobs import Job
from simulator.listing import list_images
from simulator.state import Project
from simulator.tags import list_tags, tag_action


def _project(call: Call) -> Project:
    assert call.project is not None  # authenticated routes always carry one
    return call.project


def list_images_handler(call: Call) -> Response:
    project = _project(call)
    shared = call.sim.state.shared_with(project)
    return JSONResponse({"images": list_images(project, call.request.query_params, shared)})


def show_image_handler(call: Call) -> Response:
    project = _project(call)
    image_id = call.request.path_params["image_id"]
    image = project.images.get(image_id)
    if image is None:
        # A member sees an image shared with it, whatever its member status.
        shared = call.sim.state.membership(project, image_id)
        if shared is None:
            raise ImsError("IMG.0144", status=404)
        image = shared[0].images[image_id]
    return JSONResponse(image)


def copy_handler(call: Call) -> Response:
    job = call.sim.replicator.submit(_project(call), call.request.path_params["image_id"], call.body, call.now)
    return JSONResponse({"job_id": job.job_id})


def delete_image_handler(call: Call) -> Response:
    call.sim.state.delete_image(_project(call), call.request.path_params["image_id"])
    return Response(status_code=204)


def tags_action_handler(call: Call) -> Response:
    tag_action(call.sim.state, _project(call), call.request.path_params["image_id"], call.body)
    return Response(status_code=204)


def list_tags_handler(call: Call) -> Response:
    return JSONResponse(list_tags(call.sim.state, _project(call), call.request.path_params["image_id"]))


def cross_region_copy_handler(call: Call) -> Response:
    job = call.sim.replicator.submit_cross_region(
        _project(call), call.request.path_params["image_id"], call.body, call.now
    )
    return JSONResponse({"job_id": job.job_id})


def _job(call: Call) -> Job:
    # Another project's job is as unknown as a job that never existed (a simulator choice).
    job = _project(call).jobs.get(call.request.path_params["job_id"])
    if job is None:
        raise ImsError("IMG.0404", status=404)
    return job


def job_handler(call: Call) -> Response:
    return JSONResponse(_job(call).view(call.now))


def job_progress_handler(call: Call) -> Response:
    return JSONResponse(_job(call).progress_view(call.now))


def quota_handler(call: Call) -> Response:
    project = _project(call)
    image = {"type": "image", "used": project.quota_used(), "quota": project.image_quota, "min": 1, "max": 1000}
    return JSONResponse({"quotas": {"resources": [image]}})


def routes(sim: Simulator) -> list[Route]:
    return [
        api_route(sim, "/v2/cloudimages", list_images_handler, name="list_images", method="GET"),
        api_route(sim, "/v2/images/{image_id}", show_image_handler, name="show_image", method="GET"),
        api_route(sim, "/v2/images/{image_id}", delete_image_handler, name="delete_image", method="DELETE"),
        api_route(
            sim,
            "/v2/{project_id}/images/{image_id}/tags/action",
            tags_action_handler,
            name="tags_action",
            method="POST",
        ),
        api_route(sim, "/v2/{project_id}/images/{image_id}/tags", list_tags_handler, name="list_tags", method="GET"),
        api_route(sim, "/v1/cloudimages/quota", quota_handler, name="quota", method="GET"),
        api_route(sim, "/v1/cloudimages/{image_id}/copy", copy_handler, name="copy", method="POST"),
        api_route(sim, "/v2.1/cloudimages/{image_id}/copy", copy_handler, name="copy", method="POST"),
        api_route(
            sim,
            "/v1/cloudimages/{image_id}/cross_region_copy",
            cross_region_copy_handler,
            name="cross_region_copy",
            method="POST",
        ),
        api_route(sim, "/v1/cloudimages/job/{job_id}", job_progress_handler, name="job_progress", method="GET"),
        api_route(sim, "/v1/{project_id}/jobs/{job_id}", job_handler, name="job", method="GET"),
    ]
