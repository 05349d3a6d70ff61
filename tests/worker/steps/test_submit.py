"""Submit: idempotent under a crash after the copy call, retries with backoff, permanent refusals, auth hold."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support import walk_to
from worker import steps
from worker.data import NotReplicated
from worker.domain.reasons import ReasonCode
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState
from worker.errors import AuthenticationError, CloudUnavailableError, ImsRefusedError, ThrottledError
from worker.queues import TaskName
from worker.ratelimit import RateLimited
from worker.runtime import build_context
from worker.steps.scheduling import pool_named

from .conftest import drive, image_id, store_items


def _validated(ctx, spec: ItemSpec) -> tuple[str, list]:
    (item_id,) = store_items(ctx, spec)
    nexts = steps.validate(ctx, item_id)
    assert [n.task for n in nexts] == [TaskName.SUBMIT]  # a free slot was granted at once
    return item_id, nexts


def test_crash_after_the_copy_call_adopts_the_copy(ctx, ims, sim) -> None:
    item_id, _ = _validated(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), name="adopt-me"))
    item = ctx.data.records.get_item(item_id)
    # The worker recorded its attempt, IMS accepted the copy, and the worker died before storing the job ID.
    walk_to(ctx.data.records, item_id, ItemState.SUBMITTING, submit_started_at=time.time())
    ims.copy_image(item.image_id, name=item.target_name)

    nexts = steps.submit(ctx, item_id)
    adopted = ctx.data.records.get_item(item_id)
    assert adopted.state is ItemState.REPLICATING and adopted.job_id is None and adopted.new_image_id
    drive(ctx, nexts)
    done = ctx.data.records.get_item(item_id)
    jobs = httpx.get(f"{sim.url}/_sim/jobs").json()["jobs"]
    assert len(jobs) == 1  # exactly one copy
    assert done.state is ItemState.SUCCEEDED and done.new_image_id == jobs[0]["image_id"]
    assert ctx.data.slots.in_use("default") == 0


def test_redelivered_submit_after_success_does_nothing(ctx, ims, sim) -> None:
    item_id, nexts = _validated(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), name="once"))
    polls = steps.submit(ctx, item_id)
    assert [n.task for n in polls] == [TaskName.POLL]
    assert steps.submit(ctx, item_id) == []  # the redelivered message
    assert len(httpx.get(f"{sim.url}/_sim/jobs").json()["jobs"]) == 1


class FakeClient:
    """Stands in for ImsClient where a test needs an answer the simulator gives only by chance."""

    def __init__(self, real, copy_error: Exception) -> None:
        self.real, self.copy_error, self.copies = real, copy_error, 0

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def copy_image(self, *args, **kwargs) -> str:
        self.copies += 1
        raise self.copy_error


def _with_client(ctx, fake) -> None:
    ctx.clients = lambda account: fake


def test_ims_full_hands_the_item_back_without_spending_its_budget(make_context, ims) -> None:
    # A probe interval the test's own steps cannot outlast (the profile's half second could, on a busy machine).
    ctx = make_context(retry_max_attempts=1, probe_interval=5.0, probe_max_interval=60.0)
    ids = store_items(ctx, *[ItemSpec(image_id=image_id(ims, "debian-12-base"), name=f"f{i}") for i in range(2)])
    steps.validate(ctx, ids[0])
    steps.validate(ctx, ids[1])
    queued_at = ctx.data.records.get_item(ids[0]).queued_at
    fake = FakeClient(ims, ThrottledError("IMG.0060 too many tasks", code="IMG.0060", endpoint="copy"))
    _with_client(ctx, fake)
    (grant,) = steps.submit(ctx, ids[0])  # IMS is full: copies made elsewhere hold its slots
    assert grant.task is TaskName.GRANT and grant.kwargs == {"pool": "default", "blocked_by": "ims_full"}
    assert grant.countdown == ctx.settings.probe_interval
    item = ctx.data.records.get_item(ids[0])
    assert item.state is ItemState.WAITING and item.error_retries == 0 and item.queued_at == queued_at
    assert not ctx.data.slots.holds("default", ids[0])
    assert ctx.data.slots.capacity("default").effective == 1  # only the other item's slot: ours now
    assert ctx.data.slots.grant(pool_named(ctx, "default"), time.time()).ids == []  # nothing more until the raise
    _with_client(ctx, ims)
    later = time.time() + ctx.settings.probe_interval + 0.1
    assert ctx.data.slots.grant(pool_named(ctx, "default"), later).ids == [ids[0]]  # first in line again
    assert fake.copies == 1


def test_transient_copy_errors_back_off_then_give_up(make_context, ims) -> None:
    ctx = make_context(retry_max_attempts=3)
    item_id, _ = _validated(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    fake = FakeClient(ims, CloudUnavailableError("HTTP 503", endpoint="copy", status_code=503))
    _with_client(ctx, fake)
    for attempt in range(1, 4):
        (again,) = steps.submit(ctx, item_id)
        assert again.task is TaskName.SUBMIT and 0 <= again.countdown <= ctx.settings.retry_max_delay
        assert ctx.data.records.get_item(item_id).error_retries == attempt
    assert steps.submit(ctx, item_id) == []
    item = ctx.data.records.get_item(item_id)
    assert item.state is ItemState.FAILED and item.reason is ReasonCode.RETRIES_EXHAUSTED
    assert "503" in item.message and fake.copies == 4
    assert ctx.data.slots.in_use("default") == 0


def test_a_gateway_throttle_is_not_counted_as_an_error(make_context, ims) -> None:
    ctx = make_context(retry_max_attempts=1)
    item_id, _ = _validated(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    _with_client(ctx, FakeClient(ims, ThrottledError("APIGW.0308", code="APIGW.0308", status_code=429)))
    for _ in range(3):
        (again,) = steps.submit(ctx, item_id)
        assert again.task is TaskName.SUBMIT
    assert ctx.data.records.get_item(item_id).error_retries == 0


def test_own_rate_limit_is_not_counted_as_an_error(make_context, ims) -> None:
    ctx = make_context(retry_max_delay=10.0)
    item_id, _ = _validated(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    _with_client(ctx, FakeClient(ims, RateLimited("slow down", retry_after=2.0)))
    (again,) = steps.submit(ctx, item_id)
    assert again.task is TaskName.SUBMIT and 2.0 <= again.countdown <= 4.0
    assert ctx.data.records.get_item(item_id).error_retries == 0


def test_countdowns_never_exceed_the_longest_countdown(ctx, ims) -> None:
    # A countdown past the visibility timeout would have Redis deliver the message twice.
    item_id, _ = _validated(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    cap = ctx.settings.longest_countdown
    for error in (RateLimited("slow down", retry_after=3600.0), ThrottledError("429", retry_after=3600.0)):
        _with_client(ctx, FakeClient(ims, error))
        (again,) = steps.submit(ctx, item_id)
        assert again.task is TaskName.SUBMIT and again.countdown <= cap


def test_permanent_refusal_fails_and_frees_the_slot_for_the_next(ctx, ims) -> None:
    source = image_id(ims, "debian-12-base")
    first = store_items(ctx, *[ItemSpec(image_id=source, name=f"n{i}") for i in range(6)])
    granted = [n for i in first for n in steps.validate(ctx, i)]
    assert len(granted) == 5 and ctx.data.slots.queued("default") == 1
    disabled = ImsRefusedError("IMG.0097 key disabled", reason=ReasonCode.KEY_DISABLED, code="IMG.0097")
    _with_client(ctx, FakeClient(ims, disabled))
    (nxt,) = steps.submit(ctx, first[0])
    assert ctx.data.records.get_item(first[0]).reason is ReasonCode.KEY_DISABLED
    assert nxt.task is TaskName.SUBMIT and nxt.kwargs["item_id"] == first[5]  # the waiting item got the slot


def test_a_full_image_quota_makes_items_wait_not_fail(ctx, ims) -> None:
    source = image_id(ims, "debian-12-base")
    ids = store_items(ctx, *[ItemSpec(image_id=source, name=f"q{i}") for i in range(3)])
    for item_id in ids:
        steps.validate(ctx, item_id)
    quota = ImsRefusedError("IMG.0015 quota", reason=ReasonCode.QUOTA_EXCEEDED, code="IMG.0015", endpoint="copy")
    _with_client(ctx, FakeClient(ims, quota))
    (grant,) = steps.submit(ctx, ids[0])  # back in line; nothing granted while the quota is full
    assert grant.task is TaskName.GRANT and grant.kwargs == {"pool": "default", "blocked_by": "quota"}
    # The grant that reads the quota again: a refresh period later, or the longest countdown (the test stacks' 2 s)
    assert grant.countdown == min(ctx.settings.quota_refresh_seconds, ctx.settings.longest_countdown)
    assert ctx.data.records.get_item(ids[0]).state is ItemState.WAITING
    assert ctx.data.slots.quota(ctx.account("default").project_id).headroom == 0
    assert ctx.data.slots.grant(pool_named(ctx, "default"), time.time()).ids == []
    _with_client(ctx, ims)  # images deleted meanwhile: the simulator's project has room
    ctx.clock = lambda: time.time() + grant.countdown  # when that grant runs, it reads the quota again
    assert [n.kwargs["item_id"] for n in steps.grant(ctx, "default")] == [ids[0]]


def test_a_quota_hand_back_goes_on_when_the_quota_read_again_has_room(make_context, ims) -> None:
    # Issue 25: the only item of its pool, refused for the quota, waited for the reconciler: nothing else was due.
    ctx = make_context(quota_refresh_seconds=0.3)
    item_id, _ = _validated(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), name="room-later"))
    quota = ImsRefusedError("IMG.0015 quota", reason=ReasonCode.QUOTA_EXCEEDED, code="IMG.0015", endpoint="copy")
    _with_client(ctx, FakeClient(ims, quota))
    nexts = steps.submit(ctx, item_id)
    _with_client(ctx, ims)  # images deleted meanwhile: the simulator's project has room
    ran = drive(ctx, nexts, cap=ctx.settings.quota_refresh_seconds)
    assert [n.task for n in ran][:2] == [TaskName.GRANT, TaskName.SUBMIT]
    assert ctx.data.records.get_item(item_id).state is ItemState.SUCCEEDED


def test_refused_credentials_fail_the_account_items_without_more_requests(ctx, ims) -> None:
    source = image_id(ims, "debian-12-base")
    a, b = store_items(ctx, ItemSpec(image_id=source, name="a"), ItemSpec(image_id=source, name="b"))
    steps.validate(ctx, a)
    fake = FakeClient(ims, AuthenticationError("APIGW.0301 bad signature", endpoint="copy", status_code=401))
    _with_client(ctx, fake)
    steps.submit(ctx, a)
    assert ctx.data.records.get_item(a).reason is ReasonCode.ACCOUNT_AUTH_FAILED
    steps.validate(ctx, b)  # the next item of the account: refused without asking the cloud
    item_b = ctx.data.records.get_item(b)
    assert item_b.state is ItemState.FAILED and item_b.reason is ReasonCode.ACCOUNT_AUTH_FAILED
    assert fake.copies == 1


def test_no_copy_call_until_the_replicas_have_the_attempt(ctx, ims, sim) -> None:
    item_id, _ = _validated(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base"), name="unconfirmed"))
    # IMSREP_REDIS_MIN_REPLICAS=1 on a Redis without replicas: an attempt can never be confirmed.
    ctx = build_context(ctx.settings.model_copy(update={"redis_min_replicas": 1, "redis_replica_timeout": 0.1}))
    with pytest.raises(NotReplicated):
        steps.submit(ctx, item_id)
    with pytest.raises(NotReplicated):  # sent again later: the recorded attempt is confirmed first, and is not
        steps.submit(ctx, item_id)
    assert httpx.get(f"{sim.url}/_sim/jobs").json()["jobs"] == []  # no copy was asked for
    assert ctx.data.records.get_item(item_id).state is ItemState.SUBMITTING
    ctx.clients.close()


def test_a_submit_that_finds_the_lock_held_looks_again_when_it_expires(ctx, ims) -> None:
    (item_id,) = store_items(ctx, ItemSpec(image_id=image_id(ims, "debian-12-base")))
    steps.validate(ctx, item_id)
    # Held by another delivery, or by one whose release a failover lost: no copy call now, another look later.
    with ctx.data.control.submit_lock(item_id, lease=5) as held:
        assert held
        (again,) = steps.submit(ctx, item_id)
        assert again.task is TaskName.SUBMIT and again.kwargs["item_id"] == item_id
        assert 4 < again.countdown <= 5 + 0.1
        assert ctx.data.records.get_item(item_id).job_id is None
    (poll,) = steps.submit(ctx, item_id)  # the look after it expired makes the copy
    assert poll.task is TaskName.POLL and ctx.data.records.get_item(item_id).state is ItemState.REPLICATING
    assert steps.submit(ctx, item_id) == []  # and a look once the item has moved on ends there
