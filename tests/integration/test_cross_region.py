"""Cross-region replication and copy-then-share through the real stack on a two-region simulator: copies made and
polled in the source region end active in the destination; every refusal ends rejected before any copy call; 12
cross-region items never run more than 5 copies at once; a decrypt-and-share item ends with an unencrypted copy
shared with the named project and tagged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from cli.demo import simulator_account
from cli.services import SIMULATOR_SECOND_REGION, SIMULATOR_SHARE_PROJECT
from worker.ims.client import ImsClient

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

SOURCES = ("ubuntu-22.04-web", "centos-7-app", "debian-12-base", "centos-6-legacy")


def _south_view(stack: Stack) -> dict[str, Any]:
    return stack.sim.get("/_sim/regions").json()[SIMULATOR_SECOND_REGION]


def _south(stack: Stack) -> ImsClient:
    """A signed client of the destination region's default project, as the worker's destination client is."""
    view = _south_view(stack)
    account = simulator_account(stack.info).in_region(SIMULATOR_SECOND_REGION, view["project_id"])
    return ImsClient(account, connect_timeout=5, read_timeout=30)


def _cross_region_jobs(stack: Stack, names: set[str]) -> list[dict[str, Any]]:
    return [job for job in stack.jobs() if job["slot"] == "cross_region" and job["image_name"] in names]


def test_twelve_cross_region_copies_run_five_at_a_time_and_end_active_in_the_destination(stack: Stack) -> None:
    items = [
        {"image_id": stack.image_ids[source], "name": f"south-{source}-{n}", "target_region": SIMULATOR_SECOND_REGION}
        for source in SOURCES
        for n in range(3)
    ]
    accepted = stack.submit(items)
    batch = stack.wait_done(accepted["batch_id"], timeout=120)
    assert batch["counts"]["succeeded"] == 12, batch
    done = stack.items(accepted["batch_id"])
    names = {item["name"] for item in items}
    jobs = _cross_region_jobs(stack, names)
    assert len(jobs) == 12 and {job["job_type"] for job in jobs} == {"imsCrossRegionCopyImageJob"}
    # Exact peak from the jobs' intervals: never more than IMS's 5 cross-region copies at once.
    ends = sorted([(job["begin"], 1) for job in jobs] + [(job["end"], -1) for job in jobs])
    running = peak = 0
    for _, step in ends:
        running += step
        peak = max(peak, running)
    assert 1 < peak <= 5, peak
    assert stack.project()["peak_concurrent_cross_region_jobs"] <= 5
    with _south(stack) as south:
        for item in done:
            copy = south.get_image(item["new_image_id"])
            assert copy is not None and copy.status == "active" and copy.name == item["name"]
            assert item["mode"] == "cross-region" and item["target_project_id"] == _south_view(stack)["project_id"]
    assert all(stack.ims.get_image(item["new_image_id"]) is None for item in done)  # nothing in the source


@pytest.mark.parametrize(
    ("source", "extra", "reason"),
    [
        ("euleros-encrypted", {}, "ENCRYPTED_CROSS_REGION"),
        ("install-iso", {}, "ISO_IMAGE"),
        ("ecs-full-backup", {}, "FULL_ECS_IMAGE"),
        ("uploading-image", {}, "IMAGE_NOT_ACTIVE"),
        ("centos-7-app", {"target_project": f"{SIMULATOR_SECOND_REGION}_nowhere"}, "TARGET_PROJECT_NOT_FOUND"),
    ],
)
def test_each_cross_region_refusal_ends_rejected_before_any_copy_call(stack: Stack, source, extra, reason) -> None:
    name = f"refused-{reason.lower()}"
    item = {"image_id": stack.image_ids[source], "name": name, "target_region": SIMULATOR_SECOND_REGION, **extra}
    accepted = stack.submit([item])
    stack.wait_done(accepted["batch_id"])
    (done,) = stack.items(accepted["batch_id"])
    assert (done["state"], done["reason"]) == ("rejected", reason), done
    assert [h["state"] for h in stack.api.get(f"/v1/replications/{done['item_id']}").json()["history"]] == [
        "accepted", "validating", "rejected",
    ]  # fmt: skip
    assert _cross_region_jobs(stack, {name}) == []


def test_a_key_with_target_region_is_refused_at_submission(stack: Stack) -> None:
    item = {"image_id": stack.image_ids["centos-7-app"], "target_region": SIMULATOR_SECOND_REGION, "kms_key": "app-key"}
    response = stack.api.post("/v1/batches", json={"items": [item]})
    assert response.status_code == 422 and "kms_key" in response.text


def test_decrypt_and_share_ends_with_an_unencrypted_copy_shared_and_tagged(stack: Stack) -> None:
    source = stack.ims.get_image(stack.image_ids["euleros-encrypted"])
    assert source is not None and source.is_encrypted
    item = {"image_id": source.id, "name": "euleros-decrypt-share", "share_with": [SIMULATOR_SHARE_PROJECT],
            "tags": {"purpose": "shared"}, "provenance": True}  # fmt: skip
    accepted = stack.submit([item])
    stack.wait_done(accepted["batch_id"])
    (done,) = stack.items(accepted["batch_id"])
    assert (done["state"], done["reason"]) == ("succeeded", None), done
    copy = stack.ims.get_image(done["new_image_id"])
    assert copy is not None and copy.status == "active" and not copy.is_encrypted
    members = stack.ims.image_members(copy.id)
    assert [(m.member_id, m.status) for m in members] == [(SIMULATOR_SHARE_PROJECT, "pending")]
    tags = {"purpose": "shared", "imsrep_source": source.id, "imsrep_batch": accepted["batch_id"]}
    assert stack.ims.image_tags(copy.id) == tags
    followups = done["followups"]
    assert followups["tags"]["applied"] == tags and followups["share"]["members"] == [
        {"project_id": SIMULATOR_SHARE_PROJECT, "status": "pending"}
    ]
    history = [h["state"] for h in stack.api.get(f"/v1/replications/{done['item_id']}").json()["history"]]
    assert history[-3:] == ["replicating", "finishing", "succeeded"]


def test_sharing_an_encrypted_copy_is_refused_at_submission(stack: Stack) -> None:
    item = {"image_id": stack.image_ids["centos-7-app"], "kms_key": "app-key", "share_with": [SIMULATOR_SHARE_PROJECT]}
    response = stack.api.post("/v1/batches", json={"items": [item]})
    assert response.status_code == 422 and "share_with" in response.text and "IMG.0098" in response.text
