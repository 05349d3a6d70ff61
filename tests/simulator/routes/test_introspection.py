"""/_sim/: health, call statistics, jobs with exact peak concurrency, per-project summaries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PROJECT = "ac234de25c6741d2b1273da49eea1b9e"
OTHER = "0123456789abcdef0123456789abcdef"


def test_health(sim: Callable[..., Any]) -> None:
    health = sim(seed=7).introspect("health")
    assert health["status"] == "ok" and health["region"] == "cn-north-4" and health["seed"] == 7
    assert health["project_ids"] == [PROJECT] and health["locked_access_keys"] == []


def test_stats_count_every_call_by_endpoint_and_status(sim: Callable[..., Any]) -> None:
    server = sim(copy_seconds=30)
    client = server.client()
    image = client.image_named("centos-7-app")["id"]
    client.get(f"/v2/images/{image}")
    client.get("/v2/images/00000000-0000-0000-0000-000000000000")
    job_id = client.copy(image, {"name": "counted"}).json()["job_id"]
    client.copy(image, {})
    client.job(job_id)
    client.get(f"/v1/cloudimages/job/{job_id}")
    client.post(f"/v1.0/{PROJECT}/kms/list-keys", {})
    client.post(f"/v1.0/{PROJECT}/kms/describe-key", {"key_id": "nope"})
    server.token()
    server.token(password="wrong")
    client.get("/v2/cloudimages", tamper=lambda h: h.pop("Authorization"))
    stats = server.introspect("stats")
    assert stats["by_endpoint"] == {
        "copy": {"200": 1, "400": 1},
        "describe_key": {"400": 1},
        "job": {"200": 1},
        "job_progress": {"200": 1},
        "list_images": {"200": 1, "401": 1},
        "list_keys": {"200": 1},
        "show_image": {"200": 1, "404": 1},
        "tokens": {"201": 1, "401": 1},
    }
    assert stats["total"] == 12
    # Unauthenticated calls have no project; the rest are counted under theirs.
    assert sum(sum(c.values()) for c in stats["by_project"][PROJECT].values()) == 9


def test_jobs_and_exact_peak_concurrency(sim: Callable[..., Any], waiter: Callable[..., Any]) -> None:
    server = sim(project_ids=[PROJECT, OTHER], copy_seconds=0.6, job_limit=3)
    client = server.client()
    for n in range(3):
        client.copy_named("debian-12-base", f"wave one {n}")
    waiter(lambda: server.introspect("projects")["projects"][0]["running_jobs"] == 0, what="the first wave")
    for n in range(2):
        client.copy_named("debian-12-base", f"wave two {n}")
    view = server.introspect("jobs", project_id=PROJECT)
    assert view["peak_concurrent_jobs"] == {PROJECT: 3}
    assert [job["image_name"] for job in view["jobs"]] == [
        "wave one 0",
        "wave one 1",
        "wave one 2",
        "wave two 0",
        "wave two 1",
    ]
    first = view["jobs"][0]
    assert first["status"] == "SUCCESS" and first["end_time"] and first["end"] > first["begin"]
    assert first["source_image_id"] == client.image_named("debian-12-base")["id"]
    assert first["image_id"] == client.image_named("wave one 0")["id"] and first["project_id"] == PROJECT
    assert server.introspect("jobs")["peak_concurrent_jobs"] == {PROJECT: 3, OTHER: 0}
    assert server.plain.get("/_sim/jobs", params={"project_id": "f" * 32}).status_code == 404
    summary = server.introspect("projects")["projects"][0]
    assert summary["jobs_total"] == 5 and summary["peak_concurrent_jobs"] == 3
    assert summary["job_limit"] == 3 and summary["image_quota"] == 50 and summary["request_rate"] == 0
