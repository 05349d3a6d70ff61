"""The account's guardrails, judged by the worker whatever the API let through: an item stored straight through the
data layer that breaks one is rejected before any call (sharing, a region) or before the copy (decryption); one
that was validated under looser settings fails before its copy call, and its sharing stops before the member call;
a plan gives such items the verdicts validation would."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from tests.conftest import SIM_PROJECT
from tests.support import walk_to
from worker import steps
from worker.data import NewItem
from worker.data.plans import ITEMS
from worker.domain.followups import Followups, ShareResult, Status
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName
from worker.steps import Next, StepContext

from .conftest import drive, image_id, ims_calls, run_batch, store_items

FRIEND, STRANGER = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"


@pytest.fixture
def sim(start_simulator):
    return start_simulator(project_ids=[SIM_PROJECT, FRIEND], copy_seconds=0.3, image_quota=1000, seed=7)


@pytest.fixture
def ctx(make_context) -> StepContext:
    return make_context(account={"share_projects": [FRIEND], "allow_decrypt": False})


def _tightened(ctx: StepContext, **fields: object) -> StepContext:
    """The same context (Redis, clients) under the account's guardrails changed as ``fields`` say."""
    account = ctx.settings.accounts["default"].model_copy(update=fields)
    return replace(ctx, settings=ctx.settings.model_copy(update={"accounts": {"default": account}}))


def _jobs(sim) -> list[dict]:
    return httpx.get(f"{sim.url}/_sim/jobs").json()["jobs"]


@pytest.mark.parametrize(
    ("fields", "reason", "rule"),
    [
        ({"share_with": [STRANGER]}, ReasonCode.SHARE_NOT_ALLOWED, "is not in account default's share_projects"),
        ({"target_region": "cn-south-1"}, ReasonCode.REGION_NOT_ALLOWED, "not in account default's copy_regions"),
    ],
)
def test_an_item_stored_past_the_api_is_rejected_before_any_call(ctx, ims, fields, reason, rule) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), **fields))
    before = ims_calls(ctx)
    assert steps.validate(ctx, item_id) == []
    item = ctx.data.records.get_item(item_id)
    assert (item.state, item.reason) == (ItemState.REJECTED, reason) and rule in (item.message or "")
    assert ims_calls(ctx) == before  # not even the image was looked up


def test_the_listing_path_rejects_them_too_and_validates_the_rest(ctx, ims, sim) -> None:
    source = image_id(ims, "debian-12-base")
    specs = [ItemSpec(image_id=source, name="shared", share_with=[FRIEND]),
             ItemSpec(image_id=source, name="leaked", share_with=[STRANGER]),
             ItemSpec(image_id=source, name="moved", target_region="cn-south-1")]  # fmt: skip
    shared, leaked, moved = run_batch(ctx, *specs)
    assert (shared.state, shared.reason) == (ItemState.SUCCEEDED, None), shared.message
    assert (leaked.state, leaked.reason) == (ItemState.REJECTED, ReasonCode.SHARE_NOT_ALLOWED)
    assert (moved.state, moved.reason) == (ItemState.REJECTED, ReasonCode.REGION_NOT_ALLOWED)
    assert [job["image_name"] for job in _jobs(sim) if job["job_type"] == "imsCopyImageInRegionJob"] == ["shared"]


def test_decryption_is_refused_once_the_source_is_read_and_a_re_key_goes_on(ctx, ims) -> None:
    source = image_id(ims, "euleros-encrypted")
    (plain,) = store_items(ctx, ItemSpec(image_id=source, name="plain"))
    assert steps.validate(ctx, plain) == []
    item = ctx.data.records.get_item(plain)
    assert (item.state, item.reason) == (ItemState.REJECTED, ReasonCode.DECRYPT_NOT_ALLOWED)
    assert "account default's allow_decrypt is false" in (item.message or "")
    (rekeyed,) = store_items(ctx, ItemSpec(image_id=source, name="rekeyed", kms_key="app-key"))
    assert [n.task for n in steps.validate(ctx, rekeyed)] == [TaskName.SUBMIT]
    plain_source = image_id(ims, "debian-12-base")  # an unencrypted source: nothing to decrypt
    (copy,) = store_items(ctx, ItemSpec(image_id=plain_source, name="plain-copy"))
    assert [n.task for n in steps.validate(ctx, copy)] == [TaskName.SUBMIT]


def test_a_guardrail_tightened_after_validation_fails_the_item_before_its_copy_call(ctx, ims, sim) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), share_with=[FRIEND]))
    assert [n.task for n in steps.validate(ctx, item_id)] == [TaskName.SUBMIT]  # valid then, a slot granted
    tightened = _tightened(ctx, share_projects=[])
    drive(tightened, [Next(TaskName.SUBMIT, {"item_id": item_id})])
    item = ctx.data.records.get_item(item_id)
    assert (item.state, item.reason) == (ItemState.FAILED, ReasonCode.SHARE_NOT_ALLOWED), item.message
    assert _jobs(sim) == [] and ctx.data.slots.in_use("default") == 0  # no copy, and the slot handed on


def test_sharing_stops_before_the_member_call_when_the_project_is_no_longer_allowed(ctx, ims) -> None:
    copy = image_id(ims, "debian-12-base")  # stands for the item's active copy
    (item_id,) = store_items(ctx, ItemSpec(image_id=copy, share_with=[FRIEND]))
    followups = Followups(started_at=ctx.clock(), share=ShareResult(wanted=[FRIEND]))
    walk_to(ctx.data.records, item_id, ItemState.FINISHING, followups=followups, new_image_id=copy, poll_seq=0)
    before = ims_calls(ctx)
    steps.followup(_tightened(ctx, share_projects=[STRANGER]), item_id, 0)
    item = ctx.data.records.get_item(item_id)
    assert (item.state, item.reason) == (ItemState.SUCCEEDED, ReasonCode.NOT_SHARED)
    share = item.followups.share
    assert (share.status, share.reason) == (Status.FAILED, ReasonCode.SHARE_NOT_ALLOWED)
    assert "SHARE_NOT_ALLOWED" in (item.message or "") and share.not_shared == [FRIEND]
    assert ims_calls(ctx) == before and ims.image_members(copy) == []  # no member call, no member


def test_a_plan_gives_guardrail_breaches_the_verdicts_validation_gives(ctx, ims) -> None:
    specs = [ItemSpec(image_id=image_id(ims, "debian-12-base"), share_with=[STRANGER]),
             ItemSpec(image_id=image_id(ims, "debian-12-base"), target_region="cn-south-1"),
             ItemSpec(image_id=image_id(ims, "euleros-encrypted")),
             ItemSpec(image_id=image_id(ims, "debian-12-base"), share_with=[FRIEND])]  # fmt: skip
    stored = ctx.data.plans.create([NewItem(s, "default") for s in specs], ttl=600, first_stage=ITEMS)
    pending = [(ITEMS, "")]
    while pending:
        stage, marker = pending.pop(0)
        pending += [
            (str(n.kwargs["stage"]), str(n.kwargs["marker"])) for n in steps.plan(ctx, stored.plan_id, stage, marker)
        ]
    verdicts = [(v["verdict"], v.get("reason")) for v in ctx.data.plans.verdicts(stored.plan_id)]
    assert verdicts == [("refused", "SHARE_NOT_ALLOWED"), ("refused", "REGION_NOT_ALLOWED"),
                        ("refused", "DECRYPT_NOT_ALLOWED"), ("copy", None)]  # fmt: skip
