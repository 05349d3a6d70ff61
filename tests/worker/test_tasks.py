"""The tasks' poison guard: an item whose step keeps killing workers fails with REDELIVERY_LIMIT."""

from __future__ import annotations

import uuid

from config.settings import load_settings
from tests.support import walk_to
from worker import tasks
from worker.data import NewItem
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.runtime import build_context


def test_redeliveries_past_the_cap_fail_the_item_and_free_its_slot(redis_server) -> None:
    settings = load_settings(
        redis_url=redis_server.url,
        key_prefix=f"t{uuid.uuid4().hex[:8]}",
        demo=True,
        max_redeliveries=2,
        accounts={"default": {"project_id": "0" * 32, "access_key": "ak-test", "secret_key": "sk-test"}},
    )
    ctx = build_context(settings)
    records, slots = ctx.data.records, ctx.data.slots
    (item_id,) = records.create_batch([NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default")]).item_ids
    walk_to(records, item_id, ItemState.SUBMITTING)
    slots.restore("default", item_id, now=1.0)

    assert not tasks._poisoned(ctx, "replication.submit", "message-1", item_id, item_id)
    assert not tasks._poisoned(ctx, "replication.submit", "message-1", item_id, item_id)
    assert not tasks._poisoned(ctx, "replication.poll", "message-2", item_id, item_id)  # counted per message
    assert tasks._poisoned(ctx, "replication.submit", "message-1", item_id, item_id)
    item = records.get_item(item_id)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.REDELIVERY_LIMIT
    assert slots.in_use("default") == 0
