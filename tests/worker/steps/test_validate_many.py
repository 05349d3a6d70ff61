"""Validation of many items of one account at once (an admit chunk): same verdicts as one by one, fewer calls."""

from __future__ import annotations

import uuid

from worker import steps
from worker.domain.spec import ItemSpec
from worker.queues import TaskName
from worker.steps import StepContext
from worker.steps.validate import LISTING_MIN_ITEMS

from .conftest import ims_calls, store_items

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
