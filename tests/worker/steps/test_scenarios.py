"""Each scenario of the seed, and each refusal, through validate -> submit -> poll against the simulator."""

from __future__ import annotations

import uuid

import httpx
import pytest

from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState

from .conftest import image_id, run_batch


def _copies(sim) -> list[dict]:
    return httpx.get(f"{sim.url}/_sim/jobs").json()["jobs"]


def test_decrypt_encrypted_source_without_key_gives_unencrypted_copy(ctx, ims, sim) -> None:
    source = ims.get_image(image_id(ims, "euleros-encrypted"))
    assert source.is_encrypted
    (item,) = run_batch(ctx, ItemSpec(image_id=source.id, name="plain-euler"))
    assert item.state is ItemState.SUCCEEDED and item.cmk_id is None
    copy = ims.get_image(item.new_image_id)
    assert copy.status == "active" and not copy.is_encrypted and copy.name == "plain-euler"


def test_rekey_encrypted_source_with_app_key(ctx, ims) -> None:
    app_key = ims.find_key("app-key")
    (item,) = run_batch(ctx, ItemSpec(image_id=image_id(ims, "euleros-encrypted"), kms_key="app-key"))
    assert item.state is ItemState.SUCCEEDED and item.cmk_id == app_key.key_id
    assert ims.get_image(item.new_image_id).cmk_id == app_key.key_id


def test_encrypt_plain_source_with_default_key_alias(ctx, ims, sim) -> None:
    default_key = ims.find_key("ims/default")
    source = image_id(ims, "ubuntu-22.04-web")
    (item,) = run_batch(ctx, ItemSpec(image_id=source, kms_key="ims/default"))
    assert item.state is ItemState.SUCCEEDED and item.cmk_id == default_key.key_id
    assert item.target_name == f"copy_{sim.region}_ubuntu-22.04-web" and item.source_name == "ubuntu-22.04-web"
    copy = ims.get_image(item.new_image_id)
    assert copy.cmk_id == default_key.key_id and copy.data_origin == f"image,{sim.region},{source}"


def test_fast_create_enabled_on_old_image(ctx, ims) -> None:
    source = ims.get_image(image_id(ims, "centos-6-legacy"))
    assert not source.supports_fast_create
    (item,) = run_batch(ctx, ItemSpec(image_id=source.id, description="fast create"))
    assert item.state is ItemState.SUCCEEDED
    copy = ims.get_image(item.new_image_id)
    assert copy.supports_fast_create and copy.description == "fast create"
    assert [t.state for t in ctx.data.records.history(item.id)] == [
        ItemState.ACCEPTED, ItemState.VALIDATING, ItemState.WAITING,
        ItemState.SUBMITTING, ItemState.REPLICATING, ItemState.SUCCEEDED,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "key", "reason"),
    [
        ("ecs-full-backup", None, ReasonCode.FULL_ECS_IMAGE),
        ("install-iso", None, ReasonCode.ISO_IMAGE),
        ("bigdata-200g", None, ReasonCode.IMAGE_TOO_LARGE),
        ("uploading-image", None, ReasonCode.IMAGE_NOT_ACTIVE),
        (None, None, ReasonCode.IMAGE_NOT_FOUND),
        ("debian-12-base", "no-such-key", ReasonCode.KEY_NOT_FOUND),
        ("debian-12-base", str(uuid.uuid4()), ReasonCode.KEY_NOT_FOUND),
        ("debian-12-base", "disabled-key", ReasonCode.KEY_DISABLED),
        ("debian-12-base", "retiring-key", ReasonCode.KEY_DISABLED),
        ("euleros-encrypted", "old-key", ReasonCode.KEY_SAME_AS_SOURCE),
    ],
)
def test_refusals_never_reach_the_copy_call(ctx, ims, sim, source, key, reason) -> None:
    source_id = image_id(ims, source) if source else str(uuid.uuid4())
    (item,) = run_batch(ctx, ItemSpec(image_id=source_id, kms_key=key))
    assert item.state is ItemState.REJECTED and item.reason is reason, item.message
    assert item.message
    assert _copies(sim) == []
    assert ctx.data.slots.in_use("default") == 0


def test_every_problem_is_named_at_once(ctx, ims) -> None:
    (item,) = run_batch(ctx, ItemSpec(image_id=image_id(ims, "ecs-full-backup"), kms_key="disabled-key"))
    assert item.reason is ReasonCode.FULL_ECS_IMAGE
    assert "full-ECS" in item.message and "disabled-key" in item.message


def test_ims_job_failure_is_reported_with_its_code(start_simulator, redis_server) -> None:
    from worker.runtime import build_context

    from .conftest import sim_settings

    sim = start_simulator(copy_seconds=0.3, fail_rate=1.0, seed=3)
    ctx = build_context(sim_settings(redis_server.url, sim, f"t{uuid.uuid4().hex[:8]}"))
    ims = ctx.clients("default")
    (item,) = run_batch(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.IMS_JOB_FAILED
    assert item.message.startswith("IMS job ") and item.job_id in item.message
    assert ctx.data.slots.in_use("default") == 0


def test_seven_items_share_five_slots(ctx, ims, sim) -> None:
    source = image_id(ims, "debian-12-base")
    peak = 0

    def watch() -> None:
        nonlocal peak
        peak = max(peak, ctx.data.slots.in_use("default"))

    items = run_batch(ctx, *[ItemSpec(image_id=source, name=f"copy {i}") for i in range(7)], watch=watch)
    assert all(i.state is ItemState.SUCCEEDED for i in items)
    assert len({i.new_image_id for i in items}) == 7
    assert peak == 5 and ctx.data.slots.in_use("default") == 0
    project = httpx.get(f"{sim.url}/_sim/projects").json()["projects"][0]
    assert project["peak_concurrent_jobs"] <= 5 and project["jobs_total"] == 7
