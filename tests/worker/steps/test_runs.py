"""A policy's runs against the simulator over HTTP: each due run started once as a selector batch (ticks racing,
a tick lost after its claim), the overlap rule, and exactly-once copies by provenance tags, read from the cloud:
a later run copies only new images, even after Redis has forgotten every batch."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from worker import steps
from worker.domain.followups import PROVENANCE_POLICY, PROVENANCE_SOURCE
from worker.domain.policy import Overlap, Policy
from worker.domain.reasons import ReasonCode
from worker.domain.retirement import PROVENANCE_BORN, PROVENANCE_LINEAGE
from worker.domain.states import ItemState
from worker.queues import TaskName
from worker.steps import StepContext

from .conftest import add_images, ims_calls, make_due, plan_policy, run_policy, store_policy


def _forget_all_but_policies(ctx: StepContext) -> None:
    """Redis loses every batch, item and idempotency key; the policies keep their definitions, due times and runs."""
    r = ctx.data._client
    for key in r.scan_iter(f"{ctx.settings.key_prefix}:*"):
        if ":polic" not in key:
            r.delete(key)


def _sources_of_copies(ims, policy: Policy) -> list[str]:
    copies = ims.list_images(tag=f"{PROVENANCE_POLICY}={policy.id}")
    return sorted(ims.image_tags(c.id)[PROVENANCE_SOURCE] for c in copies)


def test_a_due_run_is_a_selector_batch_of_the_policys_owner_and_label(ctx, sim) -> None:
    policy = store_policy(ctx, f"r{uuid.uuid4().hex[:6]}-")
    [expand] = steps.start_runs(ctx)
    assert expand.task is TaskName.EXPAND
    batch_id = expand.kwargs["batch_id"]
    summary = ctx.data.records.batch(batch_id)
    assert summary.label == "nightly" and summary.owner == policy.owner and summary.selection.state == "expanding"
    stored = ctx.data.policies.load(policy.id)
    assert (stored.runs, stored.starting, stored.last_batch) == (1, None, batch_id)
    assert stored.next_run_at > ctx.clock() + 50
    assert steps.start_runs(ctx) == []  # not due again before its interval
    [run] = ctx.data.policies.runs(policy.id, limit=5)
    assert (run.run, run.batch_id, run.skipped) == (1, batch_id, False)


def test_ticks_racing_start_one_run_and_a_lost_tick_is_finished_by_the_next(ctx, sim) -> None:
    policy = store_policy(ctx, f"r{uuid.uuid4().hex[:6]}-")
    with ThreadPoolExecutor(6) as pool:
        sent = [n for nexts in pool.map(lambda _: steps.start_runs(ctx), range(6)) for n in nexts]
    assert len({n.kwargs["batch_id"] for n in sent}) == 1  # each tick that got it names the one batch
    assert ctx.data.policies.load(policy.id).runs == 1
    assert len(ctx.data.lifecycle.page(limit=50, cursor=None, label="nightly", state=None).batches) == 1

    # A tick that died after its claim: the run stays due, and the next tick creates its batch (once).
    make_due(ctx, policy)
    claimed = ctx.data.policies.load(policy.id)
    assert ctx.data.policies.claim(claimed, ctx.clock(), ctx.clock() + 60) == 2
    first, again = steps.start_runs(ctx), steps.start_runs(ctx)
    assert again == [] and len(first) == 1
    assert ctx.data.policies.load(policy.id).runs == 2
    batches = ctx.data.lifecycle.page(limit=50, cursor=None, label="nightly", state=None).batches
    assert len(batches) == 2


def test_a_run_overlapping_an_unfinished_one_is_skipped_or_waits(ctx, sim) -> None:
    skipping = store_policy(ctx, f"s{uuid.uuid4().hex[:6]}-")
    waiting = store_policy(ctx, f"w{uuid.uuid4().hex[:6]}-", overlap=Overlap.WAIT)
    assert len(steps.start_runs(ctx)) == 2  # both first runs; their selections never run here: unfinished
    for policy in (skipping, waiting):
        make_due(ctx, policy)
    assert steps.start_runs(ctx) == []
    [skipped, started] = ctx.data.policies.runs(skipping.id, limit=5)
    assert skipped.skipped and skipped.message.startswith("the previous run's batch") and started.batch_id
    assert ctx.data.policies.load(waiting.id).runs == 1  # waits, still due
    assert [p.id for p in ctx.data.policies.due(ctx.clock(), limit=10)] == [waiting.id]


def test_each_source_is_copied_once_across_runs_even_when_redis_forgets_the_batches(ctx, sim, ims) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}-"
    first = add_images(sim, prefix, 3)
    policy = store_policy(ctx, prefix)

    batch = run_policy(ctx, policy)
    items, _ = ctx.data.records.batch_items(batch, limit=10, cursor=0)
    assert sorted(i.image_id for i in items) == sorted(first)
    assert {i.state for i in items} == {ItemState.SUCCEEDED}
    copy = ims.image_tags(items[0].new_image_id)
    born = copy.pop(PROVENANCE_BORN)  # the source's creation time, for retention (tests/worker/steps/test_retire.py)
    assert born.endswith("Z") and copy == {
        "team": "web",
        PROVENANCE_POLICY: policy.id,
        PROVENANCE_SOURCE: items[0].image_id,
        PROVENANCE_LINEAGE: prefix.rstrip("-"),  # "<prefix>1" and so on: the name without its number
    }

    # Nothing new: the second run lists its copies (which its selector also matches) and makes no item.
    before = ims_calls(ctx)
    again = run_policy(ctx, policy)
    summary = ctx.data.records.batch(again)
    assert summary.total == 0 and summary.selection.copied == 3
    calls = ims_calls(ctx) - before
    assert calls == {"list_images:200": 2, "quota:200": 1}  # its copies, then its one page of sources

    # Redis forgets every batch, item and idempotency key (the policy itself kept): still nothing copied twice.
    _forget_all_but_policies(ctx)
    fresh = add_images(sim, prefix, 2)
    third = run_policy(ctx, policy)
    items, _ = ctx.data.records.batch_items(third, limit=10, cursor=0)
    assert sorted(i.image_id for i in items) == sorted(fresh)
    assert ctx.data.records.batch(third).selection.copied == 3
    assert _sources_of_copies(ims, policy) == sorted(first + fresh)


def test_a_copy_whose_tags_failed_is_tagged_by_a_later_run_not_copied_again(make_context, sim) -> None:
    # One retry, so the failed tagging gives up quickly.
    ctx = make_context(retry_max_attempts=1)
    ims = ctx.clients("default")
    prefix = f"u{uuid.uuid4().hex[:6]}-"
    sources = add_images(sim, prefix, 2)
    policy = store_policy(ctx, prefix)  # its copies match its selector: an untagged one must not pass for a source
    faults = {"error_rate": 1.0, "error_apis": ["tags_action"]}
    assert httpx.post(f"{sim.url}/_sim/faults", json=faults, timeout=10).status_code == 200
    first, _ = ctx.data.records.batch_items(run_policy(ctx, policy), limit=10, cursor=0)
    assert {(i.state, i.reason) for i in first} == {(ItemState.SUCCEEDED, ReasonCode.TAGS_NOT_APPLIED)}
    assert _sources_of_copies(ims, policy) == []  # the copies carry no provenance: a listing by tag misses them
    assert plan_policy(ctx, policy).summary["items"] == 2  # a plan judges the sources again, and not their copies

    # The tags work again, and Redis forgets every batch and item: only the cloud knows the copies are the policy's.
    assert httpx.post(f"{sim.url}/_sim/faults", json={"error_rate": 0.0}, timeout=10).status_code == 200
    _forget_all_but_policies(ctx)
    second, _ = ctx.data.records.batch_items(run_policy(ctx, policy), limit=10, cursor=0)
    assert sorted(i.image_id for i in second) == sorted(sources)  # the untagged copies are no sources of their own
    assert {(i.state, i.reason) for i in second} == {(ItemState.SUCCEEDED, None)}
    assert {i.new_image_id for i in second} == {i.new_image_id for i in first}  # adopted, not copied again
    jobs = httpx.get(f"{sim.url}/_sim/jobs", timeout=10).json()["jobs"]
    assert sorted(job["source_image_id"] for job in jobs) == sorted(sources)  # one copy each, ever
    assert _sources_of_copies(ims, policy) == sorted(sources)


def test_a_plan_of_a_policy_leaves_out_what_it_copied(ctx, sim, ims) -> None:
    prefix = f"k{uuid.uuid4().hex[:6]}-"
    images = add_images(sim, prefix, 2)
    policy = store_policy(ctx, prefix)
    run_policy(ctx, policy)
    record = plan_policy(ctx, policy)
    assert record.state == "done" and record.summary["items"] == 0  # both sources copied: nothing to judge
    assert sorted(images) == _sources_of_copies(ims, policy)
