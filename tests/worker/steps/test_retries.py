"""The error budget of an item: retries spent exactly up to ``retry_max_attempts``, and none during an outage."""

from __future__ import annotations

from collections.abc import Callable

from worker import steps
from worker.data.accounts import CircuitPolicy
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.errors import CloudUnavailableError
from worker.queues import TaskName

from .conftest import image_id, store_items

DOWN = CloudUnavailableError("HTTP 503", endpoint="get_image", status_code=503)


class Unanswered:
    """The account's client, whose image look-ups fail with 503; ``meanwhile`` runs while one is in flight."""

    def __init__(self, real) -> None:
        self.real, self.calls = real, 0
        self.meanwhile: Callable[[], object] | None = None

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def get_image(self, image_id: str):
        self.calls += 1
        if (run := self.meanwhile) is not None:
            self.meanwhile = None
            run()
        raise DOWN


def _failing(ctx, ims) -> tuple[str, Unanswered]:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    fake = Unanswered(ims)
    ctx.clients = lambda account: fake
    return item_id, fake


def test_deliveries_failing_side_by_side_never_spend_more_than_the_budget(make_context, ims) -> None:
    # Issue 25: an item used 14 error retries against a limit of 12. The delivery that met an error with none left
    # failed it, and another delivery of its step, whose call was in flight meanwhile, counted one more on top.
    ctx = make_context(retry_max_attempts=12)
    item_id, fake = _failing(ctx, ims)
    for spent in range(1, 13):
        (again,) = steps.validate(ctx, item_id)
        assert again.task is TaskName.VALIDATE and ctx.data.records.get_item(item_id).error_retries == spent
    fake.meanwhile = lambda: steps.validate(ctx, item_id)  # a second delivery, run while this one's call hangs
    assert steps.validate(ctx, item_id) == []
    item = ctx.data.records.get_item(item_id)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.RETRIES_EXHAUSTED
    assert item.error_retries == 12 and item.message.startswith("gave up after 12 retries")
    assert fake.calls == 14  # the first call and twelve retries, and the call already in flight


def test_an_error_while_the_accounts_circuit_is_open_spends_no_retry(ctx, ims) -> None:
    # The error that opens the circuit, or a probe's, says the cloud is down, not the item: it waits for the probe.
    item_id, _ = _failing(ctx, ims)
    s = ctx.settings
    policy = CircuitPolicy(s.circuit_failures, s.probe_interval, s.probe_max_interval)
    for _ in range(s.circuit_failures):
        ctx.data.accounts.record_outcome("default", "get_image", "503", "transient", policy)
    again, probe = steps.validate(ctx, item_id)
    assert probe.task is TaskName.PROBE and 0 < probe.countdown <= s.probe_interval
    assert again.task is TaskName.VALIDATE and again.countdown >= probe.countdown  # just after the probe
    item = ctx.data.records.get_item(item_id)
    assert item.state is ItemState.VALIDATING and item.error_retries == 0
