"""Follow-ups of an active copy (tags, then sharing): the slot is freed as soon as the copy is active, each
follow-up says what it applied, and one that fails leaves the item succeeded with the copy and says what was not
done."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SIM_PROJECT
from tests.support import walk_to
from worker import steps
from worker.domain.followups import Followups, ShareResult, Status, TagsResult
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.errors import CloudUnavailableError, ImsRefusedError
from worker.ims.client import ImsClient
from worker.queues import TaskName
from worker.steps import Next

from .conftest import drive, image_id, run_batch, store_items

FRIEND = "0123456789abcdef0123456789abcdef"
SOUTH = "cn-south-1"
SOUTH_FRIEND = "5b1e3c6a9f0d4e2b8a7c6d5e4f3a2b1c"
STRANGER = "fedcba9876543210fedcba9876543210"  # a project the simulator does not know


@pytest.fixture
def sim(start_simulator):
    projects = [SIM_PROJECT, FRIEND, f"{SOUTH}=fb4b47a09b165926b3edc1cbe047917a", f"{SOUTH}={SOUTH_FRIEND}"]
    return start_simulator(project_ids=projects, copy_seconds=0.5, member_job_seconds=0.3, image_quota=1000,
                           seed=7, region=SOUTH, region_port=f"{SOUTH}=0")  # fmt: skip


@pytest.fixture
def ctx(make_context, sim):
    south = httpx.get(f"{sim.url}/_sim/regions").json()[SOUTH]
    regions = {SOUTH: {"ims_endpoint": south["endpoint"]}}
    shares = [FRIEND, SOUTH_FRIEND, STRANGER]
    account = {"regions": regions, "agency_name": "ims_admin_agency", "share_projects": shares}
    return make_context(account=account, provenance_tags=True)


def test_decrypt_then_share_and_tag_frees_the_slot_at_once(ctx, ims, sim) -> None:
    source = ims.get_image(image_id(ims, "euleros-encrypted"))
    assert source.is_encrypted
    seen: list[tuple[ItemState, int]] = []

    def watch() -> None:
        item = ctx.data.records.get_items(ctx.data.records.batch_item_ids(batch))[0]
        seen.append((item.state, ctx.data.slots.in_use("default")))

    (item_id,) = store_items(ctx, ItemSpec(image_id=source.id, share_with=[FRIEND], tags={"team": "web"}))
    batch = ctx.data.records.get_item(item_id).batch_id
    drive(ctx, [Next(TaskName.ADMIT, {"batch_id": batch})], watch=watch)
    item = ctx.data.records.get_item(item_id)
    assert item.state is ItemState.SUCCEEDED and item.reason is None, item.message
    assert (ItemState.FINISHING, 0) in seen  # the copy's slot was free while its follow-ups ran
    copy = ims.get_image(item.new_image_id)
    assert not copy.is_encrypted
    wanted = {"team": "web", "imsrep_source": source.id, "imsrep_batch": batch}
    assert ims.image_tags(copy.id) == wanted
    f = item.followups
    assert f.tags.status is Status.APPLIED and f.tags.applied == wanted
    assert f.share.status is Status.APPLIED and f.share.job_id
    assert [(m.project_id, m.status) for m in f.share.members] == [(FRIEND, "pending")]
    assert [t.state for t in ctx.data.records.history(item_id)][-3:] == [
        ItemState.REPLICATING, ItemState.FINISHING, ItemState.SUCCEEDED,
    ]  # fmt: skip
    assert ctx.data.telemetry.followups() == {("tags", "applied"): 1, ("share", "applied"): 1}


def test_a_refused_share_keeps_the_copy_and_says_what_was_not_shared(ctx, ims) -> None:
    stranger = STRANGER  # allowed by the account, unknown to IMS
    spec = ItemSpec(image_id=image_id(ims, "centos-7-app"), share_with=[stranger], tags={"t": "1"})
    (item,) = run_batch(ctx, spec)
    assert item.state is ItemState.SUCCEEDED and item.new_image_id
    assert item.reason is ReasonCode.NOT_SHARED and stranger in (item.message or "")
    assert item.followups.tags.status is Status.APPLIED
    share = item.followups.share
    assert share.status is Status.FAILED and share.reason is ReasonCode.SHARE_PROJECT_INVALID
    assert share.not_shared == [stranger] and "IMG.0108" in (share.message or "")
    assert ims.get_image(item.new_image_id).status == "active"


def test_a_refused_tagging_keeps_the_copy_and_sharing_still_runs(ctx, ims, monkeypatch) -> None:
    def refuse(self, image_id: str, tags: dict[str, str]) -> None:
        raise ImsRefusedError("The image tag is invalid.", reason=ReasonCode.TAG_INVALID, code="IMG.0115",
                              endpoint="tag_action", status_code=400)  # fmt: skip

    monkeypatch.setattr(ImsClient, "tag_image", refuse)
    spec = ItemSpec(image_id=image_id(ims, "debian-12-base"), share_with=[FRIEND], tags={"t": "1"}, provenance=False)
    (item,) = run_batch(ctx, spec)
    assert item.state is ItemState.SUCCEEDED and item.reason is ReasonCode.TAGS_NOT_APPLIED
    assert "tags not applied: t=1" in (item.message or "") and "IMG.0115" in (item.message or "")
    assert item.followups.tags.applied == {} and item.followups.tags.not_applied == {"t": "1"}
    assert item.followups.share.status is Status.APPLIED


def test_follow_ups_have_their_own_retry_budget(make_context, sim, monkeypatch) -> None:
    ctx = make_context(retry_max_attempts=2, account={"share_projects": [FRIEND]})
    ims = ctx.clients("default")
    monkeypatch.setattr(ImsClient, "add_members", lambda *a: (_ for _ in ()).throw(
        CloudUnavailableError("connection failed", endpoint="add_members")))  # fmt: skip
    (item,) = run_batch(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), share_with=[FRIEND]))
    assert item.state is ItemState.SUCCEEDED and item.reason is ReasonCode.NOT_SHARED
    assert item.followups.share.reason is ReasonCode.RETRIES_EXHAUSTED


def test_cross_region_copy_is_tagged_and_shared_in_the_destination(ctx, ims, sim) -> None:
    spec = ItemSpec(image_id=image_id(ims, "centos-7-app"), target_region=SOUTH, share_with=[SOUTH_FRIEND],
                    tags={"env": "dr"}, provenance=False)  # fmt: skip
    (item,) = run_batch(ctx, spec)
    assert item.state is ItemState.SUCCEEDED and item.reason is None, item.message
    south = ctx.destination(item)
    assert south.image_tags(item.new_image_id) == {"env": "dr"}
    assert [(m.member_id, m.status) for m in south.image_members(item.new_image_id)] == [(SOUTH_FRIEND, "pending")]


def test_giving_up_ends_the_item_succeeded_with_what_was_not_done(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "centos-7-app"), share_with=[FRIEND]))
    followups = Followups(started_at=1.0, tags=TagsResult(wanted={"a": "b"}, applied={"a": "b"}, status=Status.APPLIED),
                          share=ShareResult(wanted=[FRIEND]))  # fmt: skip
    walk_to(ctx.data.records, item_id, ItemState.FINISHING, followups=followups, new_image_id="made")
    steps.give_up(ctx, ctx.data.records.get_item(item_id), ReasonCode.REDELIVERY_LIMIT, "worker kept dying")
    item = ctx.data.records.get_item(item_id)
    assert item.state is ItemState.SUCCEEDED and item.reason is ReasonCode.NOT_SHARED
    assert item.followups.share.reason is ReasonCode.REDELIVERY_LIMIT and item.new_image_id == "made"
    assert steps.followup(ctx, item_id, 0) == []  # a late task of the chain does nothing
