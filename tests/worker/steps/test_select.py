"""Selector expansion against the simulator over HTTP: a page per step, every filter applied, each image one item
validated from the record it was listed with, redelivery harmless, the batch's limit kept."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from cli.stack import LocalStack, StackOptions
from simulator.catalog.generate import generate
from tests.conftest import SIM_AK, SIM_PROJECT, SIM_REGION, SIM_SK, SimulatorServer
from worker import steps
from worker.data import NewItem
from worker.data.selections import selected_item_id
from worker.domain.selector import Selector, Template, batch_day
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName
from worker.runtime import build_context
from worker.steps import Next, StepContext

from .conftest import ims_calls, sim_settings

MIX = {"ordinary": 0.55, "encrypted": 0.2, "legacy": 0.1, "iso": 0.05, "full_ecs": 0.05, "not_active": 0.05}
IMAGES = 1200


@pytest.fixture(scope="module")
def catalog_sim(tmp_path_factory) -> Iterator[SimulatorServer]:
    """One simulator for the module, serving a mixed catalogue of IMAGES images."""
    state_dir = tmp_path_factory.mktemp("catalog")
    path = state_dir / "mixed.json"
    path.write_text(json.dumps(generate(IMAGES, MIX, seed=3, keys=["old-key", "other-key"])))
    options = {"catalog": path, "copy_seconds": 0.5, "image_quota": 100_000, "seed": 7}
    simulator = {"access_key": SIM_AK, "secret_key": SIM_SK, **options}
    with LocalStack(StackOptions(state_dir=state_dir, simulator=simulator, ready_timeout=30)) as stack:
        stack.start_simulator()
        yield SimulatorServer(stack, stack.port("simulator"), SIM_REGION, [SIM_PROJECT], SIM_AK, SIM_SK)


@pytest.fixture
def make(redis_server, catalog_sim):
    built = []

    def make(**overrides: object) -> StepContext:
        ctx = build_context(sim_settings(redis_server.url, catalog_sim, f"t{uuid.uuid4().hex[:8]}", **overrides))
        built.append(ctx.clients)
        return ctx

    yield make
    for clients in built:
        clients.close()


def _select(ctx: StepContext, selector: Selector, template: Template | None = None, items=()) -> str:
    now = time.time()
    spec = {
        "selector": selector.model_dump(mode="json", exclude_none=True),
        "template": (template or Template()).model_dump(mode="json", exclude_none=True),
        "account": "default",
        "region": "cn-north-4",
        "day": batch_day(now),
    }
    new = [NewItem(s, "default") for s in items]
    return ctx.data.records.create_batch(new, now, selection=spec).batch_id


def _expand_all(ctx: StepContext, batch_id: str) -> tuple[int, list[Next]]:
    """Run the expand chain to its end; returns the pages listed and every other message it asked for."""
    pending, pages, others = [Next(TaskName.EXPAND, {"batch_id": batch_id})], 0, []
    while pending:
        nxt = pending.pop(0)
        pages += 1
        for follow in steps.expand(ctx, batch_id, str(nxt.kwargs.get("marker", ""))):
            (pending if follow.task is TaskName.EXPAND else others).append(follow)
    return pages, others


def _listing(ctx: StepContext, **filters: str) -> list:
    return list(ctx.clients("default").iter_images(**{"__imagetype": "private", **filters}))


def _items(ctx: StepContext, batch_id: str) -> list:
    return ctx.data.records.batch_items(batch_id, limit=10_000)[0]


def test_a_selector_makes_one_validated_item_per_image_its_filters_imply(make) -> None:
    ctx = make()
    key = ctx.clients("default").find_key("old-key").key_id
    expected = {i.id: i for i in _listing(ctx) if i.cmk_id == key}
    assert 100 < len(expected) < IMAGES / 4
    batch_id = _select(ctx, Selector(kms_key="old-key"), Template(kms_key="app-key", name="{name}-rekeyed"))
    before = ims_calls(ctx)
    pages, others = _expand_all(ctx, batch_id)

    items = _items(ctx, batch_id)
    assert {i.image_id for i in items} == set(expected) and len(items) == len(expected)
    assert {i.id for i in items} == {selected_item_id(batch_id, image_id) for image_id in expected}
    assert {i.name for i in items} == {f"{expected[i.image_id].name}-rekeyed" for i in items}
    assert {i.kms_key for i in items} == {"app-key"}
    # Validated from the listed records: all encrypted ordinary images of one kind, so all valid and queued.
    assert Counter(i.state for i in items) == {ItemState.WAITING: len(expected)}
    assert {n.task for n in others} <= {TaskName.SUBMIT}
    summary = ctx.data.records.batch(batch_id)
    assert summary.selection.state == "done" and summary.total == len(expected)
    assert (summary.selection.matched, summary.selection.created) == (len(expected), len(expected))
    calls = ims_calls(ctx)
    calls.subtract(before)
    # IMS filtered by key: one page held them all; then one key look-up per page for each alias.
    assert pages == 1 and calls["list_images:200"] == 1 and calls["show_image:200"] == 0
    assert calls["quota:200"] == 1 and ctx.data.slots.quota(ctx.account("default").project_id).quota == 100_000


def test_client_side_filters_page_through_the_whole_listing(make) -> None:
    ctx = make()
    expected = {i.id for i in _listing(ctx) if not i.supports_fast_create}
    batch_id = _select(ctx, Selector(fast_create=False))
    pages, _ = _expand_all(ctx, batch_id)
    assert pages == IMAGES // 500 + 1
    items = _items(ctx, batch_id)
    assert {i.image_id for i in items} == expected and len(items) == len(expected)
    summary = ctx.data.records.batch(batch_id).selection
    assert (summary.listed, summary.matched) == (IMAGES, len(expected))
    # Legacy images are valid; ISO images (also without Fast Create) are refused with their reason.
    by_reason = Counter((i.state, i.reason) for i in items)
    assert by_reason[(ItemState.REJECTED, "ISO_IMAGE")] == IMAGES * MIX["iso"]
    assert by_reason[(ItemState.WAITING, None)] == IMAGES * MIX["legacy"]


def test_a_page_handled_twice_adds_nothing_twice(make) -> None:
    ctx = make()
    batch_id = _select(ctx, Selector(encrypted=True))
    first = steps.expand(ctx, batch_id)
    again = steps.expand(ctx, batch_id)  # the same message, redelivered
    assert [n.task for n in again] == []  # stored and validated already: nothing left to do
    assert [n for n in first if n.task is TaskName.EXPAND]
    made = ctx.data.records.batch(batch_id).total
    assert made == len(_items(ctx, batch_id)) == ctx.data.records.batch(batch_id).selection.created


def test_an_image_the_batch_already_has_is_not_made_twice(make) -> None:
    ctx = make()
    legacy = [i for i in _listing(ctx) if not i.supports_fast_create and not i.is_iso][:2]
    own = [ItemSpec(image_id=legacy[0].id, name="mine")]
    batch_id = _select(ctx, Selector(fast_create=False, status="active"), items=own)
    _expand_all(ctx, batch_id)
    items = _items(ctx, batch_id)
    assert Counter(i.image_id for i in items)[legacy[0].id] == 1
    assert next(i for i in items if i.image_id == legacy[0].id).name == "mine"
    assert Counter(i.image_id for i in items)[legacy[1].id] == 1
    # Each item's position is its row in the batch: its own items first, then the pages' as they were listed.
    assert [i.position for i in items] == list(range(len(items)))


def test_a_selector_stops_at_the_batch_limit_and_says_so(make) -> None:
    ctx = make(max_batch_items=30)
    batch_id = _select(ctx, Selector(status="active"))
    pages, _ = _expand_all(ctx, batch_id)
    summary = ctx.data.records.batch(batch_id)
    assert pages == 1 and summary.total == 30 and summary.selection.state == "done"
    assert "more images than a batch may hold (30 items)" in summary.selection.message


def test_an_unknown_key_alias_fails_the_selection_and_finishes_the_batch(make) -> None:
    ctx = make()
    batch_id = _select(ctx, Selector(kms_key="no-such-key"))
    assert steps.expand(ctx, batch_id) == []
    summary = ctx.data.records.batch(batch_id)
    assert summary.selection.state == "failed" and "no KMS key 'no-such-key'" in summary.selection.message
    assert summary.done and summary.total == 0


def test_a_stopped_selection_adds_no_page(make) -> None:
    ctx = make()
    batch_id = _select(ctx, Selector())
    assert ctx.data.selections.stop(batch_id, "cancelled", "cancelled by the user")
    assert steps.expand(ctx, batch_id) == [] and ctx.data.records.batch(batch_id).total == 0


def test_a_lost_page_is_sent_again_by_the_reconciler(make) -> None:
    ctx = make(stall_seconds=1)
    batch_id = _select(ctx, Selector(encrypted=True))
    steps.expand(ctx, batch_id)  # the next page's message is "lost"
    marker = ctx.data.selections.load(batch_id).progress.marker
    now = ctx.clock()
    ctx.clock = lambda: now + ctx.settings.longest_quiet + 5
    resent = [n for n in steps.reconcile(ctx) if n.task is TaskName.EXPAND]
    assert [n.kwargs for n in resent] == [{"batch_id": batch_id, "marker": marker}]
