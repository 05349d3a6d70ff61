"""Several projects at once: each has its own images, keys, jobs, job limit, quota and rate bucket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.config import SimConfig
from simulator.context import Simulator
from simulator.replication import CopyRequest, new_image
from simulator.state import Project, SimState

PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
OTHER = "0123456789abcdef0123456789abcdef"
THIRD = "fedcba9876543210fedcba9876543210"


def test_projects_are_isolated(sim: Callable[..., Any]) -> None:
    server = sim(project_ids=[PROJECT, OTHER, THIRD], copy_seconds=30, job_limit=2, image_quota=13)
    clients = {pid: server.client(pid) for pid in (PROJECT, OTHER, THIRD)}
    ids = {pid: c.image_named("centos-7-app")["id"] for pid, c in clients.items()}
    assert len(set(ids.values())) == 3  # deterministic per project and name
    key_ids = {pid: c.keys()["app-key"]["key_id"] for pid, c in clients.items()}
    assert len(set(key_ids.values())) == 3
    # Another project's key does not exist here.
    refused = clients[PROJECT].copy(ids[PROJECT], {"name": "x", "cmk_id": key_ids[OTHER]})
    assert refused.json()["error"]["code"] == "IMG.0095"
    # Each project fills its own two job slots.
    for pid in (PROJECT, OTHER):
        for n in range(2):
            clients[pid].copy_named("centos-7-app", f"{pid[:4]}-{n}")
        assert clients[pid].copy(ids[pid], {"name": "third"}).json()["error"]["code"] == "IMG.0060"
    job_id = clients[THIRD].copy_named("centos-7-app", "only one")
    assert clients[THIRD].job(job_id)["status"] in ("INIT", "RUNNING")
    summaries = {p["project_id"]: p for p in server.introspect("projects")["projects"]}
    assert [summaries[pid]["running_jobs"] for pid in (PROJECT, OTHER, THIRD)] == [2, 2, 1]
    assert [summaries[pid]["image_count"] for pid in (PROJECT, OTHER, THIRD)] == [12, 12, 11]
    assert summaries[OTHER]["project_name"] == "cn-north-4_2" and summaries[PROJECT]["project_name"] == "cn-north-4"
    assert [summaries[pid]["quota_used"] for pid in (PROJECT, OTHER, THIRD)] == [12, 12, 11]
    by_project = server.introspect("stats")["by_project"]
    assert by_project[THIRD]["copy"] == {"200": 1} and by_project[PROJECT]["copy"] == {"200": 2, "400": 2}


def test_tick_moves_the_new_image_with_its_job() -> None:
    clock = [1000.0]
    simulator = Simulator(SimConfig(copy_seconds=10), clock=lambda: clock[0])
    project = simulator.state.first_project
    source = next(i for i in project.images.values() if i["name"] == "debian-12-base")
    job = simulator.replicator.submit(project, source["id"], b'{"name": "later"}', clock[0])
    image = project.images[job.image_id]
    assert image["status"] == "queued" and "active_at" not in image
    for now, status in ((1000.5, "queued"), (1001.0, "saving"), (1009.0, "saving"), (1010.0, "active")):
        simulator.state.tick(now)
        assert image["status"] == status, now
    assert image["active_at"] == image["updated_at"] == "1970-01-01T00:16:50Z"
    assert project.summary(2000.0)["peak_concurrent_jobs"] == 1


def test_killed_images_do_not_count_towards_the_quota() -> None:
    project = Project("p" * 32, "r", job_limit=5, image_quota=50, region="r")
    state = SimState({"r": [project]})
    source = {"id": "s", "name": "s", "status": "active", "visibility": "private"}
    project.add_image(source)
    for status in ("queued", "saving", "active", "killed"):
        record = new_image(source, CopyRequest(status, "", None, "0"), f"id-{status}", project.id, "r", 0.0)
        record["status"] = status
        project.add_image(record)
    assert project.quota_used() == 4 and state.first_project is project
