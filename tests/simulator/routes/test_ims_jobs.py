"""Copy jobs over HTTP: state progression, both job endpoints, the new image's fields, FAIL, durations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JOB_KEYS = {"status", "entities", "job_id", "job_type", "begin_time", "end_time", "error_code", "fail_reason"}
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_job_runs_init_running_success_and_the_image_follows(
    sim: Callable[..., Any], waiter: Callable[..., Any]
) -> None:
    import re

    client = sim(copy_seconds=1.0).client()
    source = client.image_named("centos-6-legacy")
    job_id = client.copy_named("centos-6-legacy", "fast centos 6", description="Fast Create on")
    seen_job, seen_image = [], []

    def finished() -> bool:
        job = client.job(job_id)
        progress = client.get(f"/v1/cloudimages/job/{job_id}").json()
        assert set(job) == JOB_KEYS and set(progress) == JOB_KEYS
        assert 0.0 <= progress["entities"]["process_percent"] <= 1.0
        (image,) = client.images(name="fast centos 6")
        for seen, value in ((seen_job, job["status"]), (seen_image, image["status"])):
            if not seen or seen[-1] != value:
                seen.append(value)
        if job["status"] != "SUCCESS":
            assert job["end_time"] == "" and job["entities"] == {}
        return job["status"] == "SUCCESS" and image["status"] == "active"

    waiter(finished, what="the copy to finish")
    assert seen_job[-2:] == ["RUNNING", "SUCCESS"] and set(seen_job) <= {"INIT", "RUNNING", "SUCCESS"}
    assert seen_image[-1] == "active" and set(seen_image) <= {"queued", "saving", "active"}
    job = client.job(job_id)
    assert re.fullmatch(TIME, job["begin_time"]) and re.fullmatch(TIME, job["end_time"])
    assert job["job_type"] == "imsCopyImageInRegionJob" and job["error_code"] is None and job["fail_reason"] is None
    new = client.image_named("fast centos 6")
    assert job["entities"] == {"image_id": new["id"], "image_name": "fast centos 6"}
    assert new["id"] != source["id"]
    assert new["__description"] == "Fast Create on" and new["__lazyloading"] == "true"
    assert new["__data_origin"] == f"image,cn-north-4,{source['id']}"
    assert new["__originalimagename"] == source["id"]
    assert new["__imagetype"] == "private" and new["visibility"] == "private" and new["owner"] == client.project
    assert new["enterprise_project_id"] == "0" and "__system__cmkid" not in new
    for field in ("__os_version", "__platform", "__image_size", "min_disk", "disk_format", "max_ram"):
        assert new[field] == source[field]
    assert new["active_at"] and new["updated_at"] >= new["created_at"]
    progress = client.get(f"/v1/cloudimages/job/{job_id}").json()
    assert progress["entities"]["process_percent"] == 1.0 and progress["entities"]["image_id"] == new["id"]
    assert client.get(f"/v2/images/{new['id']}").json() == new


def test_encryption_follows_the_key_given(sim: Callable[..., Any], waiter: Callable[..., Any]) -> None:
    client = sim(copy_seconds=0.3).client()
    keys = client.keys()
    plain = client.copy_named("euleros-encrypted", "decrypted")
    rekeyed = client.copy_named("euleros-encrypted", "rekeyed", cmk_id=keys["app-key"]["key_id"])
    encrypted = client.copy_named(
        "debian-12-base",
        "encrypted",
        cmk_id=keys["ims/default"]["key_id"],
        enterprise_project_id="5a9b3c3e-2f6b-4e8e-9c4e-1c2d3e4f5a6b",
    )
    for job_id in (plain, rekeyed, encrypted):
        waiter(lambda job_id=job_id: client.job(job_id)["status"] == "SUCCESS", what=f"job {job_id}")
    assert "__system__cmkid" not in client.image_named("decrypted")
    assert client.image_named("rekeyed")["__system__cmkid"] == keys["app-key"]["key_id"]
    assert client.image_named("encrypted")["__system__cmkid"] == keys["ims/default"]["key_id"]
    assert client.image_named("encrypted")["enterprise_project_id"] == "5a9b3c3e-2f6b-4e8e-9c4e-1c2d3e4f5a6b"
    assert client.images(__system__cmkid=keys["app-key"]["key_id"])[0]["name"] == "rekeyed"


def test_failed_job_and_killed_image(sim: Callable[..., Any], waiter: Callable[..., Any]) -> None:
    client = sim(copy_seconds=0.5, fail_rate=1.0).client()
    job_id = client.copy_named("centos-7-app", "doomed")
    job = waiter(lambda: (j := client.job(job_id))["status"] == "FAIL" and j, what="the job to fail")
    assert job["error_code"] and job["fail_reason"] and job["end_time"] and job["entities"] == {}
    assert client.image_named("doomed")["status"] == "killed"


def test_duration_grows_with_image_size(sim: Callable[..., Any]) -> None:
    server = sim(copy_seconds=2, copy_seconds_per_gb=0.5)
    client = server.client()
    client.copy_named("debian-12-base", "one gib")  # 1 GiB
    client.copy_named("edge-128g", "big one")  # 128 GiB
    jobs = {job["image_name"]: job for job in server.introspect("jobs")["jobs"]}
    assert abs((jobs["one gib"]["end"] - jobs["one gib"]["begin"]) - 2.5) < 1e-6
    assert abs((jobs["big one"]["end"] - jobs["big one"]["begin"]) - 66.0) < 1e-6


def test_jobs_of_other_projects_and_unknown_jobs_are_404(sim: Callable[..., Any]) -> None:
    other = "0123456789abcdef0123456789abcdef"
    server = sim(project_ids=["ac234de25c6741d2b1273da49eea1b9e", other], copy_seconds=30)
    mine, theirs = server.client(), server.client(other)
    job_id = theirs.copy_named("centos-7-app", "theirs")
    for path in (
        f"/v1/{mine.project}/jobs/{job_id}",
        f"/v1/cloudimages/job/{job_id}",
        f"/v1/{mine.project}/jobs/{'0' * 32}",
    ):
        response = mine.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "IMG.0404", "message": "The job does not exist."}}
    # Naming the other project in the path is refused by the gateway.
    response = mine.get(f"/v1/{other}/jobs/{job_id}")
    assert response.status_code == 403 and response.json()["error_code"] == "APIGW.0302"
    assert theirs.job(job_id)["status"] in ("INIT", "RUNNING")
