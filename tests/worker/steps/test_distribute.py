"""A distribution through the production steps against the simulator: the parent's copy (decrypted) is shared with
every receiver in one members call, each receiver accepts it as itself and copies it under its own key into its own
project, and a receiver that is misconfigured fails alone, named by its verdict."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.conftest import SIM_PROJECT
from tests.support import walk_to
from worker import steps
from worker.domain.distribution import Receiver
from worker.domain.followups import DistributeResult, Followups, Status
from worker.domain.item import ReplicationItem
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.ims.client import ImsClient
from worker.ims.models import Image
from worker.queues import TaskName
from worker.steps import Next
from worker.steps.distribute import receiver_id
from worker.steps.outcomes import finish

from .conftest import (
    add_images,
    drive,
    image_id,
    ims_calls,
    plan_policy,
    run_policy,
    run_step,
    store_items,
    store_policy,
)

TEAM_A, TEAM_B, TEAM_C = "a1" * 16, "b2" * 16, "c3" * 16
SOUTH, SOUTH_DEFAULT, SOUTH_TEAM = "cn-south-1", "d4" * 16, "e5" * 16  # a receiver in another region


@pytest.fixture
def sim(start_simulator):
    projects = [SIM_PROJECT, TEAM_A, TEAM_B, TEAM_C, f"{SOUTH}={SOUTH_DEFAULT}", f"{SOUTH}={SOUTH_TEAM}"]
    return start_simulator(project_ids=projects, copy_seconds=0.3, member_job_seconds=0.2, image_quota=1000,
                           seed=7, region=SOUTH, region_port=f"{SOUTH}=0")  # fmt: skip


@pytest.fixture
def ctx(make_context, sim):
    endpoint = httpx.get(f"{sim.url}/_sim/regions").json()[SOUTH]["endpoint"]
    south = {"region": SOUTH, "ims_endpoint": endpoint, "kms_endpoint": endpoint}
    teams = {
        "team-a": {"project_id": TEAM_A},
        "team-b": {"project_id": TEAM_B},
        "team-c": {"project_id": TEAM_C},
        "south": {"project_id": SOUTH_TEAM, **south},
    }
    # The source account reaches cn-south-1 (its endpoint, an agency) and may share with every receiver.
    source = {"share_projects": [TEAM_A, TEAM_B, TEAM_C, SOUTH_TEAM], "agency_name": "ims_admin_agency"}
    source["regions"] = {SOUTH: {"ims_endpoint": south["ims_endpoint"]}}
    # Quota read again soon: a receiver whose quota is full waits for it, as any in-region copy does.
    return make_context(account=source, accounts=teams, provenance_tags=False, quota_refresh_seconds=0.5)


def test_an_encrypted_image_reaches_each_receiver_under_its_key_and_a_bad_receiver_fails_alone(
    ctx, ims, monkeypatch
) -> None:
    source = ims.get_image(image_id(ims, "euleros-encrypted"))
    assert source is not None and source.cmk_id
    looked: list[tuple[str, str]] = []  # (project, image) of every image look-up
    look_up = ImsClient.get_image

    def recorded(client: ImsClient, image: str) -> Image | None:
        looked.append((client._account.project_id, image))
        return look_up(client, image)

    monkeypatch.setattr(ImsClient, "get_image", recorded)
    receivers = [
        Receiver(account="team-a", key="ims/default", tags={"team": "a"}),
        Receiver(account="team-b"),
        Receiver(account="team-c", key="ims/no-such-key"),  # misconfigured: its branch alone fails
        Receiver(account="south", region=SOUTH, key="ims/default"),  # another region: through a cross-region copy
    ]
    (parent_id,) = store_items(ctx, ItemSpec(image_id=source.id, distribute=receivers))
    batch_id = ctx.data.records.get_item(parent_id).batch_id
    drive(ctx, [Next(TaskName.ADMIT, {"batch_id": batch_id})], timeout=60)

    parent = ctx.data.records.get_item(parent_id)
    assert parent.state is ItemState.SUCCEEDED and parent.reason is ReasonCode.NOT_DISTRIBUTED
    shared = ims.get_image(parent.new_image_id)
    assert shared is not None and not shared.cmk_id  # decrypted: a shared image is unencrypted
    share, distribution = parent.followups.share, parent.followups.distribute
    assert share.status is Status.APPLIED and sorted(share.wanted) == sorted([TEAM_A, TEAM_B, TEAM_C])
    calls = ims_calls(ctx)
    assert calls["add_members:200"] == 2 and calls["update_members:200"] == 4  # one members call a region; each accepts
    # No receiver looked its shared image up: the accept proves it, the parent's copy gives it (shared_copy).
    assert not [project for project, image in looked if image == parent.new_image_id and project != SIM_PROJECT]
    verdicts = {v.account: v for v in distribution.receivers}
    assert distribution.status is Status.FAILED and distribution.reason is ReasonCode.KEY_NOT_FOUND
    assert "team-c: KEY_NOT_FOUND" in parent.message

    for account, project, key in (("team-a", TEAM_A, "ims/default"), ("team-b", TEAM_B, None)):
        child = ctx.data.records.get_item(receiver_id(parent_id, account))
        assert child.state is ItemState.SUCCEEDED and child.parent_id == parent_id and child.batch_id == batch_id
        assert verdicts[account].state == "succeeded" and verdicts[account].new_image_id == child.new_image_id
        assert verdicts[account].project_id == project
        client = ctx.clients(account)
        copy = client.get_image(child.new_image_id)
        assert copy is not None and copy.owner == project and copy.copied_from == parent.new_image_id
        assert copy.cmk_id == (client.find_key(key).key_id if key else None)
        assert {(m.member_id, m.status) for m in ims.image_members(parent.new_image_id)} >= {(project, "accepted")}
    assert ctx.clients("team-a").get_image(receiver_copy(ctx, parent_id, "team-a")).tag("team") == "a"

    failed = ctx.data.records.get_item(receiver_id(parent_id, "team-c"))
    assert failed.state is ItemState.REJECTED and failed.reason is ReasonCode.KEY_NOT_FOUND
    assert verdicts["team-c"].state == "rejected" and verdicts["team-c"].new_image_id is None
    assert "team-c: KEY_NOT_FOUND" in distribution.message and "south" not in distribution.message

    # cn-south-1's receiver: the parent's copy carried there by a cross-region item, shared there, copied there.
    south, carrier = (ctx.data.records.get_item(i) for i in (verdicts["south"].item_id, verdicts["south"].via))
    assert (carrier.target_region, carrier.parent_id, carrier.state) == (SOUTH, parent_id, ItemState.SUCCEEDED)
    assert carrier.image_id == parent.new_image_id and carrier.followups.share.wanted == [SOUTH_TEAM]
    assert south.state is ItemState.SUCCEEDED and south.image_id == carrier.new_image_id
    assert verdicts["south"].state == "succeeded" and verdicts["south"].new_image_id == south.new_image_id
    own = ctx.clients("south")
    copy = own.get_image(south.new_image_id)
    assert copy is not None and copy.owner == SOUTH_TEAM and copy.cmk_id == own.find_key("ims/default").key_id
    summary = ctx.data.records.batch(batch_id)
    assert summary.total == 6 and summary.counts[ItemState.SUCCEEDED] == 5 and summary.done
    # The receivers' private copies are counted apart from the source account's (the parent's and the carrier's).
    assert (summary.received, summary.copies_made) == (3, 2)


def receiver_copy(ctx, parent_id: str, account: str) -> str:
    return ctx.data.records.get_item(receiver_id(parent_id, account)).new_image_id


def test_the_share_is_withdrawn_once_every_receiver_has_its_copy_and_a_second_run_adds_no_receiver_twice(
    ctx, ims
) -> None:
    source = image_id(ims, "debian-12-base")
    (parent_id,) = store_items(
        ctx, ItemSpec(image_id=source, distribute=[Receiver(account="team-a")], withdraw_share=True)
    )
    batch_id = ctx.data.records.get_item(parent_id).batch_id
    ran: list[bool] = []
    again: list[Next] = []

    def run_it_twice() -> None:
        """Once the receiver item is made, the distribution runs again beside its chain, as a redelivery would."""
        parent = ctx.data.records.get_item(parent_id)
        made = parent.followups and parent.followups.distribute and parent.followups.distribute.receivers[0].item_id
        if parent.state is ItemState.FINISHING and made and not ran:
            ran.append(True)
            again.extend(steps.followup(ctx, parent_id, parent.poll_seq or 0, redelivered=True))

    drive(ctx, [Next(TaskName.ADMIT, {"batch_id": batch_id})], watch=run_it_twice)
    drive(ctx, again)
    parent = ctx.data.records.get_item(parent_id)
    distribution = parent.followups.distribute
    assert ran and parent.state is ItemState.SUCCEEDED and parent.reason is None
    assert distribution.status is Status.APPLIED and distribution.withdrawn
    assert ims.image_members(parent.new_image_id) == []  # withdrawn; the receiver's own copy outlives the share
    team_a = ctx.clients("team-a")
    copies = [i for i in team_a.list_images(name=parent.target_name) if i.owner == TEAM_A]
    assert [c.id for c in copies] == [receiver_copy(ctx, parent_id, "team-a")] and copies[0].status == "active"
    assert ctx.data.records.batch(batch_id).total == 2


def test_a_receiver_whose_image_quota_is_full_waits_then_copies_once_it_is_raised(ctx, ims, sim) -> None:
    team_a = ctx.clients("team-a")
    limits = f"{sim.url}/_sim/projects/{TEAM_A}"
    assert httpx.post(limits, json={"image_quota": team_a.get_quota().used}).status_code == 200  # full
    (parent_id,) = store_items(
        ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), distribute=[Receiver(account="team-a")])
    )
    batch_id = ctx.data.records.get_item(parent_id).batch_id
    raised: list[bool] = []

    def raise_once_it_waits() -> None:
        """Once the receiver waits for its quota, the quota is raised and read (an operator's account check), and the
        reconciler's next pass grants its slot."""
        if not raised and ctx.data.slots.quota(TEAM_A).blocked_since is not None:
            assert httpx.post(limits, json={"image_quota": 1000}).status_code == 200
            raised.append(True)
            run_step(ctx, Next(TaskName.CHECK, {"account": "team-a"}))
            drive(ctx, run_step(ctx, Next(TaskName.RECONCILE, {})))

    drive(ctx, [Next(TaskName.ADMIT, {"batch_id": batch_id})], watch=raise_once_it_waits)
    child = ctx.data.records.get_item(receiver_id(parent_id, "team-a"))
    assert raised and child.state is ItemState.SUCCEEDED  # it waited in its own account's line, never failed
    assert ctx.data.records.get_item(parent_id).followups.distribute.status is Status.APPLIED


def test_only_the_last_receiver_to_end_wakes_its_parents_distribution(ctx, ims) -> None:
    """The parent looks at its receiver items every poll_max_interval; the last of them to end has it look now, by a
    message that may take its chain over (the parent's own look may be under way), and the others' ends leave it be
    (a count of its children not ended, kept by their moves). A receiver retried counts again. Nothing wakes a
    parent that has ended."""
    source = image_id(ims, "debian-12-base")
    receivers = [Receiver(account="team-a"), Receiver(account="team-b")]
    (parent_id,) = store_items(ctx, ItemSpec(image_id=source, distribute=receivers))
    parent = ctx.data.records.get_item(parent_id)
    waiting = Followups(started_at=time.time(), distribute=DistributeResult(receivers=[]))
    walk_to(ctx.data.records, parent_id, ItemState.FINISHING, followups=waiting, new_image_id=source, poll_seq=3)
    now = time.time()
    children = [
        ReplicationItem(
            id=receiver_id(parent_id, r.account),
            batch_id=parent.batch_id,
            account=r.account,
            image_id=source,
            parent_id=parent_id,
            state=ItemState.ACCEPTED,
            created_at=now,
            updated_at=now,
        )
        for r in receivers
    ]
    assert ctx.data.records.add_children(parent.batch_id, children, now) == 2
    assert ctx.data.records.add_children(parent.batch_id, children, now) == 0  # a resend counts none twice
    for child in children:
        walk_to(ctx.data.records, child.id, ItemState.VALIDATING)

    def end(child: ReplicationItem) -> list[Next]:
        return finish(ctx, ctx.data.records.get_item(child.id), ItemState.FAILED, reason=ReasonCode.KEY_NOT_FOUND)

    wake = Next.for_item(TaskName.DISTRIBUTE, ctx.data.records.get_item(parent_id), seq=3, redelivered=1)
    assert end(children[0]) == []  # team-b's receiver is still at work
    assert end(children[1]) == [wake]
    # The batch's retry takes team-a's receiver back: its end is the last again.
    walk_to(ctx.data.records, children[0].id, ItemState.VALIDATING)
    assert end(children[0]) == [wake]
    # A parent no longer distributing (ended, say) is not woken.
    walk_to(ctx.data.records, parent_id, ItemState.SUCCEEDED)
    walk_to(ctx.data.records, children[0].id, ItemState.VALIDATING)
    assert end(children[0]) == []


def test_a_policys_run_distributes_each_new_copy_to_its_templates_receivers(ctx, sim, ims) -> None:
    """A policy's template with receivers: its plan shows them, each copy its run makes carries them and is handed to
    each, their copies are counted apart from the policy's own, and the next run hands on nothing twice."""
    prefix = f"g{uuid.uuid4().hex[:6]}-"
    sources = add_images(sim, prefix, 2)
    receivers = [{"account": "team-a", "key": "ims/default", "tags": {"team": "a"}}, {"account": "team-b"}]
    policy = store_policy(ctx, prefix, template={"name": "{name}-golden", "distribute": receivers})

    planned = ctx.data.plans.verdicts(plan_policy(ctx, policy).plan_id)
    assert sorted(v["image_id"] for v in planned) == sorted(sources)
    assert all(v["verdict"] == "copy" and v["receivers"] == receivers for v in planned)

    batch_id = run_policy(ctx, policy)
    items = ctx.data.records.get_items(ctx.data.records.batch_item_ids(batch_id))
    parents = [i for i in items if i.parent_id is None]
    assert sorted(p.image_id for p in parents) == sorted(sources)
    for parent in parents:
        assert [r.model_dump(exclude_none=True) for r in parent.distribute or ()] == receivers
        assert parent.state is ItemState.SUCCEEDED and parent.followups.distribute.status is Status.APPLIED
        for account, project in (("team-a", TEAM_A), ("team-b", TEAM_B)):
            copy = ctx.clients(account).get_image(receiver_copy(ctx, parent.id, account))
            assert copy is not None and copy.owner == project and copy.copied_from == parent.new_image_id
    batch = ctx.data.records.batch(batch_id)
    assert (batch.total, batch.copies_made, batch.received) == (6, 2, 4)

    assert run_policy(ctx, policy) != batch_id  # nothing new: no copy, and no receiver's copy, made again
    [status] = ctx.data.policy_statuses([ctx.data.policies.load(policy.id)])
    assert (status.made, status.received) == (2, 4) and status.batch.total == 0
