"""The tasks' poison guard: an item whose step keeps killing workers fails with REDELIVERY_LIMIT."""

from __future__ import annotations

import uuid

from config.settings import load_settings
from worker import tasks
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.runtime import build_pipeline
from worker.store import NewItem


def test_redeliveries_past_the_cap_fail_the_item_and_free_its_slot(redis_server) -> None:
    settings = load_settings(
        redis_url=redis_server.url,
        key_prefix=f"t{uuid.uuid4().hex[:8]}",
        demo=True,
        max_redeliveries=2,
        accounts={"default": {"project_id": "0" * 32, "access_key": "ak-test", "secret_key": "sk-test"}},
    )
    p = build_pipeline(settings)
    (item_id,) = p.store.create_batch([NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default")]).item_ids
    for state in (ItemState.VALIDATING, ItemState.WAITING, ItemState.SUBMITTING):
        p.store.transition(item_id, state)
    p.slots.restore("default", item_id)

    assert not tasks._poisoned(p, "replication.submit", "message-1", item_id, item_id)
    assert not tasks._poisoned(p, "replication.submit", "message-1", item_id, item_id)
    assert not tasks._poisoned(p, "replication.poll", "message-2", item_id, item_id)  # counted per message
    assert tasks._poisoned(p, "replication.submit", "message-1", item_id, item_id)
    item = p.store.get_item(item_id)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.REDELIVERY_LIMIT
    assert p.slots.in_use("default") == 0
