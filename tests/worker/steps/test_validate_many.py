"""Validation of many items of one account at once (an admit chunk): same verdicts as one by one, fewer calls."""

from __future__ import annotations

import json
import uuid

from worker import steps
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.queues import TaskName
from worker.runtime import build_context
from worker.steps import Next, StepContext
from worker.steps.validate import LISTING_MIN_ITEMS

from .conftest import ims_calls, sim_settings, store_items

UNKNOWN = str(uuid.UUID(int=7))


def _specs(ctx: StepContext) -> list[ItemSpec]:
    """Every catalogue image, plus keys good and bad, plus an image that does not exist."""
    images = ctx.clients("default").list_images()
    specs = [ItemSpec(image_id=i.id) for i in images]
    specs += [ItemSpec(image_id=images[0].id, kms_key=k, name=f"k-{n}") for n, k in enumerate(["app-key", "nokey"])]
    specs.append(ItemSpec(image_id=UNKNOWN))
    assert len(specs) >= LISTING_MIN_ITEMS
    return specs


def _verdicts(ctx: StepContext, ids: list[str]) -> list[tuple]:
    items = [ctx.data.records.get_item(i) for i in ids]
    return [(i.state, i.reason, i.target_name, i.cmk_id, i.source_size) for i in items]


def test_a_chunk_gets_the_verdicts_one_by_one_would_with_listing_pages(make_context) -> None:
    one_by_one, together = make_context(), make_context()
    alone = store_items(one_by_one, *_specs(one_by_one))
    for item_id in alone:
        steps.validate(one_by_one, item_id)

    chunk = store_items(together, *_specs(together))
    before = ims_calls(together)
    nexts = steps.admit(together, together.data.records.get_item(chunk[0]).batch_id)
    fallbacks = [n for n in nexts if n.task is TaskName.VALIDATE]
    assert [n.kwargs["image_id"] for n in fallbacks] == [UNKNOWN]  # only what the listing cannot answer
    for nxt in fallbacks:
        steps.validate(together, str(nxt.kwargs["item_id"]))

    assert _verdicts(together, chunk) == _verdicts(one_by_one, alone)
    calls = {key: n - before.get(key, 0) for key, n in ims_calls(together).items()}
    # One listing page for the whole catalogue, one look-up per key alias, one get_image for the unknown image.
    # ... and the image quota, read once before the first grant.
    assert calls == {"list_images:200": 1, "list_keys:200": 2, "show_image:200": 1, "quota:200": 1}
    assert {n.task for n in nexts} <= {TaskName.VALIDATE, TaskName.SUBMIT}


def test_a_small_group_goes_one_by_one(ctx) -> None:
    ids = store_items(ctx, *_specs(ctx)[: LISTING_MIN_ITEMS - 1])
    nexts = steps.admit(ctx, ctx.data.records.get_item(ids[0]).batch_id)
    assert [n.task for n in nexts] == [TaskName.VALIDATE] * len(ids)


def test_an_admit_pass_walks_the_listing_once_for_all_its_chunks(start_simulator, redis_server, tmp_path) -> None:
    # 1,100 images: three listing pages. The batch takes them in an order of its own, so that each 500-item chunk
    # has items on every page: walked chunk by chunk, that was three pages a chunk.
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"default": {"images": [{"name": f"w-{n:04d}"} for n in range(1_100)]}}))
    sim = start_simulator(copy_seconds=600, image_quota=10_000, seed=7, catalog=str(catalog))
    ctx = build_context(sim_settings(redis_server.url, sim, f"t{uuid.uuid4().hex[:8]}"))
    try:
        images = sorted(i.id for i in ctx.clients("default").iter_images(**{"__imagetype": "private"}))
        assert len(images) == 1_100
        batch_id = ctx.data.records.get_item(store_items(ctx, *(ItemSpec(image_id=i) for i in images))[0]).batch_id
        before = ims_calls(ctx)
        pending = [Next(TaskName.ADMIT, {"batch_id": batch_id})]
        validates = []
        while pending:  # the chain, chunk after chunk; the grants' submits are not run
            nexts = steps.admit(ctx, **dict(pending.pop().kwargs))
            pending += [n for n in nexts if n.task is TaskName.ADMIT]
            validates += [n for n in nexts if n.task is TaskName.VALIDATE]
        assert validates == []  # every item answered by the listing
        ids = ctx.data.records.admission_ids(batch_id, 0, -1)
        assert {item.state for item in ctx.data.records.get_items(ids)} == {ItemState.WAITING}
        assert ims_calls(ctx)["list_images:200"] - before["list_images:200"] == 3  # each page once

        # The pass is over: its pages are not kept (a new pass, a user's retry say, walks afresh).
        assert ctx.data.walks.known(batch_id, "default", set(images)) == ({}, None, False)
    finally:
        ctx.clients.close()
