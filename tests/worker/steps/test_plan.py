"""Plans against the simulator over HTTP: each verdict is the one validation reaches, with a handful of IMS calls;
the quota headroom and a forecast are reported; a stage run twice changes nothing."""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter

import pytest

from worker import steps
from worker.data import NewItem
from worker.data.plans import ITEMS, PAGE
from worker.domain.selector import Selector, Template, batch_day
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName
from worker.steps import StepContext
from worker.steps.plan import duration_estimate

from .conftest import ims_calls, store_items

UNKNOWN = str(uuid.UUID(int=11))


def _specs(ctx: StepContext) -> list[ItemSpec]:
    """Every catalogue image, keys good and bad, a name IMS refuses, and an image that does not exist."""
    images = ctx.clients("default").list_images()
    specs = [ItemSpec(image_id=i.id) for i in images]
    first = images[0].id
    specs += [ItemSpec(image_id=first, kms_key=k, name=f"k-{n}") for n, k in enumerate(["app-key", "nokey"])]
    specs += [ItemSpec(image_id=first, kms_key="disabled-key"), ItemSpec(image_id=UNKNOWN)]
    return specs


def _plan(ctx: StepContext, specs: list[ItemSpec], selection: dict | None = None) -> tuple[str, int]:
    """Store a plan and run its stages to the end; returns its ID and the number of stages run."""
    first = PAGE if selection is not None and not specs else ITEMS
    stored = ctx.data.plans.create([NewItem(s, "default") for s in specs], ttl=600, first_stage=first,
                                   selection=selection)  # fmt: skip
    pending, ran = [(first, "")], 0
    while pending:
        stage, marker = pending.pop(0)
        ran += 1
        for nxt in steps.plan(ctx, stored.plan_id, stage, marker):
            assert nxt.task is TaskName.PLAN
            pending.append((str(nxt.kwargs["stage"]), str(nxt.kwargs["marker"])))
    return stored.plan_id, ran


def _verdict(item) -> tuple:
    if item.state is ItemState.REJECTED:
        return ("refused", item.reason.value, item.message, None, None)
    assert item.state is ItemState.WAITING, item
    return ("copy", None, None, item.target_name, item.cmk_id)


def test_a_plan_gives_each_item_the_verdict_validation_gives_it(make_context) -> None:
    run, dry = make_context(), make_context()
    ids = store_items(run, *_specs(run))
    for item_id in ids:
        steps.validate(run, item_id)
    expected = [_verdict(run.data.records.get_item(i)) for i in ids]

    specs = _specs(dry)
    before = ims_calls(dry)
    plan_id, stages = _plan(dry, specs)
    record = dry.data.plans.load(plan_id)
    got = [(v["verdict"], v.get("reason"), v.get("message"), v.get("target_name"), v.get("cmk_id"))
           for v in dry.data.plans.verdicts(plan_id)]  # fmt: skip
    assert got == expected
    assert record.state == "done" and stages == 2  # the items (and the summary, in the same task), one look-up
    calls = ims_calls(dry)
    calls.subtract(before)
    # One listing page, key look-ups by alias, one show_image for the unknown image, one quota read.
    assert +calls == Counter({"list_images:200": 1, "list_keys:200": 3, "show_image:200": 1, "quota:200": 1})
    # Nothing was stored as an item, nothing queued, nothing copied.
    assert dry.data.records.counts_by_state() == dict.fromkeys(ItemState, 0)


def test_the_summary_counts_refusals_and_reports_quota_and_a_stated_forecast(make_context) -> None:
    ctx = make_context()
    plan_id, _ = _plan(ctx, _specs(ctx))
    summary = ctx.data.plans.load(plan_id).summary
    verdicts = ctx.data.plans.verdicts(plan_id)
    copies = sum(v["verdict"] == "copy" for v in verdicts)
    assert summary["items"] == len(verdicts) and summary["would_copy"] == copies
    assert summary["by_reason"] == dict(sorted(Counter(v["reason"] for v in verdicts if v.get("reason")).items()))
    [account] = summary["accounts"]
    assert account["quota"]["quota"] == 1000 and account["quota"]["over_quota"] == 0
    assert account["quota"]["headroom"] == 1000 - account["quota"]["used"]
    [forecast] = account["forecast"]
    assert forecast["slots"] == 5 and forecast["learned"] is False and "default model" in forecast["basis"]
    assert forecast["copies"] == copies and forecast["seconds"] > 0
    assert ctx.data.slots.quota(ctx.account("default").project_id).quota == 1000  # kept for the warning at submission


def test_a_forecast_uses_the_pools_learned_copy_times(make_context) -> None:
    ctx = make_context()
    for size, seconds in ((1 * 1024**3, 100.0), (3 * 1024**3, 300.0)):
        ctx.data.accounts.record_duration("default", size, seconds)
    copies = [{"size_bytes": 2 * 1024**3}] * 10
    predicted = duration_estimate(ctx, "default", copies)
    assert predicted["learned"] and predicted["per_copy_seconds"] == 200.0
    assert predicted["seconds"] == 10 * 200.0 / 5


def test_over_quota_counts_what_the_headroom_cannot_hold(make_context) -> None:
    ctx = make_context()
    quota = ctx.clients("default").get_quota()
    room = quota.quota - quota.used
    image = ctx.clients("default").list_images(name="centos-7-app")[0].id
    specs = [ItemSpec(image_id=image, name=f"q-{i}") for i in range(room + 7)]
    plan_id, _ = _plan(ctx, specs)
    summary = ctx.data.plans.load(plan_id).summary
    assert summary["would_copy"] == room + 7 and summary["over_quota"] == 7


def test_a_selector_plan_judges_each_image_once_as_expansion_would(make_context) -> None:
    ctx = make_context()
    images = ctx.clients("default").list_images()
    not_fast = sorted((i for i in images if not i.supports_fast_create), key=lambda i: i.is_iso)
    selection = {
        "selector": Selector(fast_create=False).model_dump(mode="json", exclude_none=True),
        "template": Template(name="{name}-fc").model_dump(mode="json", exclude_none=True),
        "account": "default",
        "region": "cn-north-4",
        "day": batch_day(time.time()),
    }
    own = [ItemSpec(image_id=not_fast[0].id, name="mine")]
    plan_id, _ = _plan(ctx, own, selection)
    verdicts = ctx.data.plans.verdicts(plan_id)
    assert Counter(v["image_id"] for v in verdicts) == Counter(i.id for i in not_fast)
    assert [v["index"] for v in verdicts] == list(range(len(verdicts)))
    named = {v["image_id"]: v.get("target_name") for v in verdicts if v["verdict"] == "copy"}
    assert named[not_fast[0].id] == "mine"
    assert all(name == f"{i.name}-fc" for i in not_fast[1:] if (name := named.get(i.id)))


def test_a_stage_run_twice_stores_nothing_twice(make_context) -> None:
    ctx = make_context()
    specs = _specs(ctx)
    stored = ctx.data.plans.create([NewItem(s, "default") for s in specs], ttl=600, first_stage=ITEMS)
    first = steps.plan(ctx, stored.plan_id)
    assert steps.plan(ctx, stored.plan_id) == []  # redelivered: the plan has moved on
    assert [str(n.kwargs["stage"]) for n in first] == ["lookup"]
    assert ctx.data.plans.load(stored.plan_id).judged == len(specs)


def test_many_lookups_are_spread_over_tasks(make_context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules["worker.steps.plan"], "LOOKUPS", 3)
    ctx = make_context()
    specs = [ItemSpec(image_id=str(uuid.uuid4())) for _ in range(12)]
    plan_id, stages = _plan(ctx, specs)
    assert stages == 1 + 4  # the items, then four look-up tasks (the last one also sums up)
    assert {v["reason"] for v in ctx.data.plans.verdicts(plan_id)} == {"IMAGE_NOT_FOUND"}
