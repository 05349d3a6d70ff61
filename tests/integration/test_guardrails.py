"""Guardrails through the real stack: an item written straight into Redis (past the API's validation) that shares
with a project outside its account's ``share_projects`` is admitted the way the API admits a batch, and the real
worker refuses it, ``SHARE_NOT_ALLOWED``, before any copy: the simulator never gets a copy or a member call for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from api.enqueue import Enqueuer
from cli.processes import wait_until
from worker.data import NewItem, open_data_layer, redis_target
from worker.domain.spec import ItemSpec

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

OUTSIDER = "fedcba9876543210fedcba9876543210"  # not among the stack's share projects (cli/stack.py)


def _member_calls(stack: Stack) -> dict[str, int]:
    return stack.sim.get("/_sim/stats").json()["by_endpoint"].get("add_members", {})


def test_a_forged_item_sharing_outside_the_allow_list_ends_share_not_allowed_and_is_never_shared(stack: Stack) -> None:
    settings = stack.local.service_settings()
    data = open_data_layer(redis_target(settings), settings.key_prefix)
    enqueuer = Enqueuer(settings)
    try:
        before = _member_calls(stack)
        spec = ItemSpec(image_id=stack.image_ids["debian-12-base"], name="forged-share", share_with=[OUTSIDER])
        forged = data.records.create_batch([NewItem(spec, "default")])  # what the API stores, minus its checks
        assert enqueuer.send_admit(forged.batch_id)  # and the message it sends
        wait_until(lambda: data.records.batch(forged.batch_id).done, 60, "the forged item to end")
    finally:
        enqueuer.close()
        data.close()
    (item_id,) = forged.item_ids
    shown = stack.api.get(f"/v1/replications/{item_id}").json()
    assert (shown["state"], shown["reason"]) == ("rejected", "SHARE_NOT_ALLOWED"), shown
    assert f"project {OUTSIDER} is not in account default's share_projects" in shown["message"]
    assert "share_projects" in shown["next_step"]
    assert [h["state"] for h in shown["history"]] == ["accepted", "validating", "rejected"]
    assert [job for job in stack.jobs() if job["image_name"] == "forged-share"] == []  # never copied
    assert _member_calls(stack) == before  # never shared
