"""The Lua scripts: every key they touch is handed to them, and they survive a server that forgot them."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.support import walk_to
from worker.data import NewItem
from worker.data.scripts import source
from worker.domain.pools import Pool
from worker.domain.spec import ItemSpec
from worker.domain.states import Event, ItemState

LUA = sorted(p.stem for p in (Path(__file__).parents[3] / "worker" / "data" / "lua").glob("*.lua"))


@pytest.mark.parametrize("name", LUA)
def test_scripts_name_their_keys_and_build_none_except_where_they_say_why(name: str) -> None:
    lines = source(name).splitlines()
    header = "\n".join(line for line in lines if line.startswith("--"))
    body = "\n".join(line for line in lines if not line.startswith("--"))
    used = set(re.findall(r"KEYS\[\d+", body))
    assert used and all(key in header for key in used), f"{name}.lua must name every key it uses in its header"
    if re.search(r"\.\.\s*(id|ARGV)", body):  # concatenating a key name inside the script
        assert "Discovers keys at run time" in header, f"{name}.lua builds keys without saying why"


def test_scripts_are_loaded_again_after_the_server_forgot_them(redis_server) -> None:
    """A restarted Redis, or a replica promoted by Sentinel, has no scripts: NOSCRIPT must reload them."""
    data = redis_server.data()
    records = data.records
    ids = records.create_batch([NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default") for _ in range(2)]).item_ids
    walk_to(records, ids[0], ItemState.WAITING)
    redis_server.client().script_flush()
    item = records.get_item(ids[1])
    assert records.move(item, Event.START_VALIDATION).ok
    redis_server.client().script_flush()
    assert records.update_if(ids[1], ItemState.VALIDATING, progress=0.5)
    redis_server.client().script_flush()
    pool = Pool("default", "default", 5, "p")
    data.slots.enqueue(pool, records.get_item(ids[0]), 1.0, 0.5)
    assert data.slots.grant(pool, 2.0).ids == [ids[0]]
    redis_server.client().script_flush()
    assert data.accounts.take_token("default", 10.0, 5, 1.0).verdict == "go"
