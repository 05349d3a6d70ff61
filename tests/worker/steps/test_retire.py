"""A policy's retention against the simulator over HTTP: each run's ``replication.retire`` deletes exactly the
older copies the policy made (listed by its tag), keeps a copy a member has accepted unless the rule says
otherwise, reports without deleting, and a later run never copies again what it retired; a plan says the same.
Then, against stand-in destinations, each deletion's verdict when IMS refuses it or keeps failing, the members'
say over a shared copy, and a source's lineage from the rule's tag or its name."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import SIM_PROJECT
from tests.support import accept_share, add_versions
from worker.domain.followups import PROVENANCE_POLICY, PROVENANCE_SOURCE
from worker.domain.reasons import ReasonCode
from worker.domain.retirement import Action, Copy, Judged, Retention, Verdict
from worker.domain.selector import Selector, Template, selection_record
from worker.errors import CloudUnavailableError, ImsRefusedError
from worker.ims.models import Image, ImageMember
from worker.steps.provenance import Copied
from worker.steps.retire import judge
from worker.steps.select import SelectionSpec

from .conftest import add_images, plan_policy, run_policy, store_policy

FRIEND = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def sim(start_simulator):
    return start_simulator(
        project_ids=[SIM_PROJECT, FRIEND], copy_seconds=0.3, member_job_seconds=0.2, image_quota=1000, seed=7
    )


@pytest.fixture
def ctx(make_context):
    return make_context(account={"share_projects": [FRIEND]})


def _copies(ims, policy_id: str) -> dict[str, str]:
    """The policy's copies in the cloud: source -> copy."""
    return {
        ims.image_tags(c.id)[PROVENANCE_SOURCE]: c.id for c in ims.list_images(tag=f"{PROVENANCE_POLICY}={policy_id}")
    }


def _verdicts(ctx, policy_id: str, run: int) -> dict[str, str]:
    """What run ``run``'s retention said: source -> verdict."""
    return {j["source"]: j["verdict"] for j in ctx.data.policies.retirements(policy_id, [run]).get(run, [])}


def test_keep_two_deletes_exactly_the_older_copies_it_made_and_never_copies_them_again(ctx, sim, ims) -> None:
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    web = add_versions(sim.url, f"{prefix}web-v", 3)
    db = add_images(sim, f"{prefix}db-v", 1)
    # A user's image named as the policy's copy of web-v2 will be: the same name, not made by the policy.
    made = httpx.post(f"{sim.url}/_sim/images", json={"name": f"old-{prefix}web-v2"}, timeout=10)
    twin = made.json()["images"][0]["id"]
    rule = Retention(keep_last=2, action="delete")
    policy = store_policy(ctx, prefix, retention=rule, template={"name": "old-{name}"})

    run_policy(ctx, policy)  # catching up: only the newest two of each lineage are copied
    assert set(_copies(ims, policy.id)) == {web[1], web[2], db[0]}
    web += add_versions(sim.url, f"{prefix}web-v", 1)  # web-v4
    run_policy(ctx, policy)  # copies web-v4; its retention judged the copies before it: all kept
    assert set(_copies(ims, policy.id)) == {web[1], web[2], web[3], db[0]} and _verdicts(ctx, policy.id, 2) == {}

    third = run_policy(ctx, policy)  # run 3 retires web-v2's copy
    assert _verdicts(ctx, policy.id, 3) == {web[1]: "retired"}
    # What its pages judged new sources by, kept in Redis between them: the newest two copies of each lineage.
    ranked = ctx.data.selections.load(third).progress.ranking
    assert sorted(c.source for c in ranked) == sorted([web[2], web[3], db[0]])
    assert set(_copies(ims, policy.id)) == {web[2], web[3], db[0]}
    assert ims.get_image(twin) is not None  # same name, not the policy's: untouched

    batch = run_policy(ctx, policy)  # web-v2 still matches the selector, and its copy is not made again
    assert ctx.data.records.batch(batch).total == 0 and _verdicts(ctx, policy.id, 4) == {}
    assert set(_copies(ims, policy.id)) == {web[2], web[3], db[0]}


def test_a_copy_a_member_accepted_is_kept_unless_the_rule_says_so_and_report_deletes_nothing(ctx, sim, ims) -> None:
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    app = add_versions(sim.url, f"{prefix}app-v", 1)
    report = Retention(keep_last=1)
    policy = store_policy(ctx, prefix, retention=report, template={"name": "{name}-copy", "share_with": [FRIEND]})
    run_policy(ctx, policy)
    app += add_versions(sim.url, f"{prefix}app-v", 1)
    run_policy(ctx, policy)
    assert _planned(ctx, policy) == [(app[0], "retirable")]  # what run 3 will say
    run_policy(ctx, policy)  # run 3: v1's copy is past keep_last 1; reported only, its member still pending
    assert _verdicts(ctx, policy.id, 3) == {app[0]: "retirable"}
    old = _copies(ims, policy.id)[app[0]]

    accept_share(ims, ctx.settings.accounts["default"], FRIEND, old)
    deleting = report.model_copy(update={"action": Action.DELETE})
    _change(ctx, policy, deleting)
    assert _planned(ctx, policy) == [(app[0], "kept_shared")]
    run_policy(ctx, policy)
    assert _verdicts(ctx, policy.id, 4) == {app[0]: "kept_shared"} and ims.get_image(old) is not None

    _change(ctx, policy, deleting.model_copy(update={"delete_shared": True}))
    assert _planned(ctx, policy) == [(app[0], "retired")]  # a plan deletes nothing
    assert ims.get_image(old) is not None
    run_policy(ctx, policy)
    assert _verdicts(ctx, policy.id, 5) == {app[0]: "retired"} and set(_copies(ims, policy.id)) == {app[1]}


def _planned(ctx, policy) -> list[tuple[str, str]]:
    """A plan of the policy's next run: its retention's verdicts (source, verdict)."""
    summary = plan_policy(ctx, policy).summary
    assert summary["would_copy"] == 0
    return [(j["source"], j["verdict"]) for j in summary["retirements"]]


def _change(ctx, policy, rule: Retention) -> None:
    stored = ctx.data.policies.load(policy.id)
    ctx.data.policies.save(stored.changed(stored.definition.model_copy(update={"retention": rule}), ctx.clock()))


class _Refusing:
    """A destination whose deletions IMS refuses: one protected image, one gone already, one that keeps failing;
    and one shared copy that a member accepted, which it deletes."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete_image(self, image_id: str) -> None:
        if image_id == "shared":
            self.deleted.append(image_id)
            return
        if image_id == "protected":
            raise ImsRefusedError("protected image", reason=ReasonCode.IMS_REFUSED, code="IMG.0091")
        if image_id == "gone":
            raise ImsRefusedError("no such image", reason=ReasonCode.IMAGE_NOT_FOUND, code="IMG.0144")
        raise CloudUnavailableError("backend timeout", endpoint="delete_image")

    def image_members(self, image_id: str) -> list[ImageMember]:
        return [ImageMember(member_id=FRIEND, status="accepted")] if image_id == "shared" else []


def test_each_deletion_gets_a_verdict_a_refusal_with_its_reason_and_retries_then_give_up() -> None:
    old = [Copy(i, f"src-{i}", "app", float(n)) for n, i in enumerate(("protected", "gone", "flaky"))]
    found = Copied(frozenset(), frozenset(), (*old, Copy("newest", "src-newest", "app", 10.0)))
    rule = Retention(keep_last=1, action="delete")
    judged: list[Judged] = []
    with pytest.raises(CloudUnavailableError):  # not the last attempt: the step is sent again
        judge(_Refusing(), rule, found, 100.0, judged, act=True, final=False)
    assert [(j.copy.image_id, j.verdict, j.reason) for j in judged] == [
        ("protected", Verdict.FAILED, "IMS_REFUSED"),
        ("gone", Verdict.RETIRED, None),
    ]
    assert "IMG.0091" in judged[0].message
    judged.clear()
    judge(_Refusing(), rule, found, 100.0, judged, act=True, final=True)
    assert (judged[-1].copy.image_id, judged[-1].verdict, judged[-1].reason) == (
        "flaky",
        Verdict.FAILED,
        "RETRIES_EXHAUSTED",
    )


def test_a_shared_copy_is_deleted_only_when_no_member_accepted_it_or_the_rule_says_so() -> None:
    shared = Copy("shared", "src-old", "app", 1.0, shared=True)
    found = Copied(frozenset(), frozenset(), (shared, Copy("newest", "src-new", "app", 10.0)))
    destination = _Refusing()
    for rule, verdict in (
        (Retention(keep_last=1), Verdict.KEPT_SHARED),  # report: still says it is kept
        (Retention(keep_last=1, action=Action.DELETE), Verdict.KEPT_SHARED),
        (Retention(keep_last=1, action=Action.DELETE, delete_shared=True), Verdict.RETIRED),
    ):
        judged: list[Judged] = []
        judge(destination, rule, found, 100.0, judged, act=True)
        assert [(j.copy.image_id, j.verdict) for j in judged] == [("shared", verdict)]
    assert destination.deleted == ["shared"]  # once: by the rule that allows it


def test_a_sources_lineage_is_the_value_of_the_rules_tag_or_its_name_without_versions() -> None:
    record = selection_record(Selector(), Template(), "default", "cn-north-4", 0.0, policy="p" * 32)
    spec = SelectionSpec.of({**record, "retention": {"keep_last": 1, "lineage_tag": "family"}})
    tagged = Image(id="a", name="web-v1", tags=["family=gold"], created_at="2026-12-01T10:00:00Z")
    assert spec.as_copy(tagged) == Copy("a", "a", "gold", tagged.created_at.timestamp())
    assert spec.as_copy(Image(id="b", name="web-v2")).lineage == "web"
