"""Cross-region copies through validate -> submit -> poll against a two-region simulator: the copy made with the
source region's client, its job polled there, its image confirmed active in the destination; every cross-region
refusal before any copy call; the two slot pools apart; adoption of a crashed attempt's copy in the destination."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support import walk_to
from worker import steps
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName

from .conftest import drive, image_id, run_batch, store_items

SOUTH = "cn-south-1"
AGENCY = "ims_admin_agency"


@pytest.fixture
def sim(start_simulator):
    return start_simulator(copy_seconds=0.5, image_quota=1000, seed=7, region=SOUTH, region_port=f"{SOUTH}=0")


@pytest.fixture
def south(sim) -> dict:
    return httpx.get(f"{sim.url}/_sim/regions").json()[SOUTH]


@pytest.fixture
def ctx(make_context, south):
    """The account knows where cn-south-1 is (the simulator's port for it) and its agency; not the project ID,
    which validation finds in IAM by name."""
    regions = {SOUTH: {"ims_endpoint": south["endpoint"], "iam_endpoint": south["endpoint"]}}
    return make_context(account={"regions": regions, "agency_name": AGENCY})


def _jobs(sim) -> list[dict]:
    return httpx.get(f"{sim.url}/_sim/jobs").json()["jobs"]


def _south_images(ctx, south) -> list:
    return ctx.destinations("default", SOUTH, south["project_id"]).list_images()


def test_cross_region_copy_ends_active_in_the_destination(ctx, ims, sim, south) -> None:
    source = image_id(ims, "centos-7-app")
    (item,) = run_batch(ctx, ItemSpec(image_id=source, target_region=SOUTH, description="to the south"))
    assert item.state is ItemState.SUCCEEDED, item.message
    assert item.target_project_id == south["project_id"] and item.agency_name == AGENCY
    assert item.target_name == f"copy_{sim.region}_centos-7-app"  # the console's default names the source region
    (job,) = _jobs(sim)
    assert job["job_type"] == "imsCrossRegionCopyImageJob" and job["project_id"] == sim.project_id
    assert job["image_project_id"] == south["project_id"] and job["slot"] == "cross_region"
    copy = ctx.destination(item).get_image(item.new_image_id)
    assert copy.status == "active" and copy.data_origin == f"image,{sim.region},{source}"
    assert ims.get_image(item.new_image_id) is None  # not in the source project
    assert ctx.data.slots.in_use("default:cross-region") == 0


@pytest.mark.parametrize(
    ("source", "extra", "reason"),
    [
        ("euleros-encrypted", {}, ReasonCode.ENCRYPTED_CROSS_REGION),
        ("install-iso", {}, ReasonCode.ISO_IMAGE),
        ("ecs-full-backup", {}, ReasonCode.FULL_ECS_IMAGE),
        ("uploading-image", {}, ReasonCode.IMAGE_NOT_ACTIVE),
        ("centos-7-app", {"target_project": "cn-south-1_nowhere"}, ReasonCode.TARGET_PROJECT_NOT_FOUND),
    ],
)
def test_cross_region_refusals_before_any_copy_call(ctx, ims, sim, source, extra, reason) -> None:
    (item,) = run_batch(ctx, ItemSpec(image_id=image_id(ims, source), target_region=SOUTH, **extra))
    assert item.state is ItemState.REJECTED and item.reason is reason, item.message
    assert _jobs(sim) == []


def test_size_limit_across_regions_is_the_source_regions(ctx, ims, sim) -> None:
    """200 GB is over the in-region limit, but cn-north-4 copies up to 300 GB to other regions."""
    (item,) = run_batch(ctx, ItemSpec(image_id=image_id(ims, "bigdata-200g"), target_region=SOUTH), timeout=60)
    assert item.state is ItemState.SUCCEEDED, item.message


def test_no_agency_configured_is_a_refusal(make_context, ims, sim, south) -> None:
    ctx = make_context(account={"regions": {SOUTH: {"ims_endpoint": south["endpoint"]}}})
    (item,) = run_batch(ctx, ItemSpec(image_id=image_id(ims, "centos-7-app"), target_region=SOUTH))
    assert item.state is ItemState.REJECTED and item.reason is ReasonCode.AGENCY_NOT_CONFIGURED, item.message
    assert "IMSREP_ACCOUNTS__DEFAULT__AGENCY_NAME" in (item.message or "") and _jobs(sim) == []


def test_agency_without_permission_fails_at_the_copy_call(ctx, ims, sim) -> None:
    httpx.post(f"{sim.url}/_sim/agencies", json={"name": "no_rights", "regions": []}).raise_for_status()
    spec = ItemSpec(image_id=image_id(ims, "centos-7-app"), target_region=SOUTH, agency="no_rights")
    (item,) = run_batch(ctx, spec)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.AGENCY_NOT_PERMITTED, item.message
    assert "IMG.0151" in (item.message or "")


def test_cross_region_and_in_region_slots_are_apart(make_context, ims, sim, south) -> None:
    """Eight items of each kind: never more than five running of a kind, both kinds running side by side."""
    regions = {SOUTH: {"ims_endpoint": south["endpoint"], "project_id": south["project_id"]}}
    ctx = make_context(account={"regions": regions, "agency_name": AGENCY})
    source = image_id(ims, "debian-12-base")
    specs = [ItemSpec(image_id=source, name=f"n{i}") for i in range(8)]
    specs += [ItemSpec(image_id=source, name=f"s{i}", target_region=SOUTH) for i in range(8)]
    held = {"in": 0, "cross": 0}

    def watch() -> None:
        held["in"] = max(held["in"], ctx.data.slots.in_use("default"))
        held["cross"] = max(held["cross"], ctx.data.slots.in_use("default:cross-region"))

    items = run_batch(ctx, *specs, timeout=60, watch=watch)
    assert {i.state for i in items} == {ItemState.SUCCEEDED}, [i.message for i in items]
    assert held == {"in": 5, "cross": 5}
    (north,) = [p for p in httpx.get(f"{sim.url}/_sim/projects").json()["projects"] if p["region"] == sim.region]
    assert north["peak_concurrent_jobs"] <= 5 and north["peak_concurrent_cross_region_jobs"] <= 5
    assert north["cross_region_jobs_total"] == 8 and north["jobs_total"] == 8


def test_crash_after_a_cross_region_copy_call_adopts_the_copy_in_the_destination(ctx, ims, sim, south) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), target_region=SOUTH))
    assert [n.task for n in steps.validate(ctx, item_id)] == [TaskName.SUBMIT]
    item = ctx.data.records.get_item(item_id)
    walk_to(ctx.data.records, item_id, ItemState.SUBMITTING, submit_started_at=time.time())
    ims.copy_image_cross_region(item.image_id, name=item.target_name, region=SOUTH, project_name=SOUTH,
                                agency_name=AGENCY)  # fmt: skip
    nexts = steps.submit(ctx, item_id)
    adopted = ctx.data.records.get_item(item_id)
    assert adopted.state is ItemState.REPLICATING and adopted.job_id is None and adopted.new_image_id
    drive(ctx, nexts)
    assert ctx.data.records.get_item(item_id).state is ItemState.SUCCEEDED
    assert len(_jobs(sim)) == 1 and [i.id for i in _south_images(ctx, south) if i.id == adopted.new_image_id]
