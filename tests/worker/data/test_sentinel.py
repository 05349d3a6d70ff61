"""The data layer on Redis under Sentinel: it finds the master through the Sentinels, confirms the writes that must
outlive a failover on the replicas (or refuses them and leaves nothing), and follows the master a failover elects.

Real processes: a master, a replica and three Sentinels from the stack's own Sentinel topology, with a one-second
down-after so a failover takes seconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from cli.processes import wait_until
from cli.stack import LocalStack, SentinelSpec, StackOptions
from config.settings import load_settings
from tests.support import walk_to
from worker.data import Claim, DataLayer, NewItem, NotReplicated, RedisTarget, open_data_layer
from worker.data.connection import MASTER_CHECK_INTERVAL
from worker.domain.spec import ItemSpec
from worker.domain.states import ItemState

pytestmark = pytest.mark.integration

MASTER = "tmaster"


def _topology(state_dir: Path) -> LocalStack:
    spec = SentinelSpec(master=MASTER, down_after_ms=1000, failover_timeout_ms=2000)
    stack = LocalStack(StackOptions(state_dir=state_dir, sentinel=spec, ready_timeout=30))
    stack.start_redis()
    return stack


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with _topology(tmp_path_factory.mktemp("sentinel")) as stack:
        yield stack


def _data(stack: LocalStack, replicas: int = 0, prefix: str | None = None) -> DataLayer:
    target = stack.info.redis_target(min_replicas=replicas, replica_timeout=0.5, socket_timeout=2)
    return open_data_layer(target, prefix or f"s{uuid.uuid4().hex[:6]}")


def _items(n: int) -> list[NewItem]:
    return [NewItem(ItemSpec(image_id=str(uuid.uuid4())), "default") for _ in range(n)]


def test_the_data_layer_finds_the_master_through_the_sentinels(topology: LocalStack) -> None:
    assert topology.info.redis_url.startswith("sentinel://") and topology.info.redis_url.count(";") == 2
    assert topology.redis_master() == "redis"
    data = _data(topology)
    stored = data.records.create_batch(_items(3))
    assert data.records.batch(stored.batch_id).counts[ItemState.ACCEPTED] == 3


def test_a_batch_is_confirmed_by_the_replica_or_not_kept_at_all(topology: LocalStack) -> None:
    data = _data(topology, replicas=1)
    stored = data.records.create_batch(_items(2))  # the replica confirms: WAIT counted it
    assert data.records.batch(stored.batch_id) is not None

    topology.pause("redis-replica-1")  # the replica stops answering: nothing can be confirmed
    try:
        started = time.monotonic()
        with pytest.raises(NotReplicated) as refused:
            data.records.create_batch(_items(2))
        assert time.monotonic() - started < 2.0  # the WAIT timeout (0.5 s), not a hang
        assert (refused.value.acked, refused.value.wanted) == (0, 1)
        claim = Claim("key-1", "fingerprint", 60)
        with pytest.raises(NotReplicated):  # with an Idempotency-Key: its record is taken back too
            data.records.create_batch(_items(2), claim=claim)
        # Taken back from the master: no batch, item, index entry or key of them is left.
        assert data.records.counts_by_state()[ItemState.ACCEPTED] == 2
        assert len(data.lifecycle.page(limit=10, cursor=None, label=None, state=None).batches) == 1
        assert data.idempotency.find(claim.key) is None
    finally:
        topology.resume("redis-replica-1")
    wait_until(lambda: data.records.create_batch(_items(1)) is not None, 10, "the replica to confirm again")


def test_a_copy_attempt_is_recorded_only_once_the_replica_has_it(topology: LocalStack) -> None:
    data = _data(topology, replicas=1)
    [item_id] = data.records.create_batch(_items(1)).item_ids
    walk_to(data.records, item_id, ItemState.SUBMITTING)
    assert data.records.record_attempt(item_id, 1000.0) is True
    assert data.records.get_item(item_id).submit_started_at == 1000.0

    topology.pause("redis-replica-1")
    try:
        with pytest.raises(NotReplicated):
            data.records.record_attempt(item_id, 2000.0)
        with pytest.raises(NotReplicated):  # an earlier attempt's record, confirmed before a copy call
            data.records.confirm()
    finally:
        topology.resume("redis-replica-1")
    wait_until(lambda: data.records.confirm() is None, 10, "the replica to confirm again")


def test_after_the_master_and_a_sentinel_die_the_data_layer_writes_to_the_promoted_replica(tmp_path: Path) -> None:
    with _topology(tmp_path) as stack:
        data = _data(stack, prefix="failover")
        before = data.records.create_batch(_items(2))
        wait_until(lambda: _data(stack, replicas=1, prefix="failover").records.confirm() is None, 10, "replication")

        stack.kill("sentinel-1")  # the first Sentinel of the URL is gone too: the others are asked at once
        stack.processes.pop("sentinel-1")
        stack.kill("redis")
        killed = time.monotonic()
        wait_until(lambda: stack.redis_master() == "redis-replica-1", 30, "Sentinel to promote the replica")
        failover = time.monotonic() - killed
        after = None

        def write() -> bool:
            nonlocal after
            after = data.records.create_batch(_items(1))
            return True

        wait_until(write, 30, "a write on the new master", interval=0.2)
        resumed = time.monotonic() - killed
        # The same client object: its connections asked the Sentinels again and found the new master.
        assert data.records.batch(before.batch_id).total == 2 and after is not None
        assert failover < 10 and resumed < failover + 5, (failover, resumed)


def test_passwords_for_the_servers_and_the_sentinels(tmp_path: Path) -> None:
    settings = load_settings(redis_password="srv-pass-31f", redis_sentinel_password="sen-pass-8a2")
    spec = SentinelSpec(master=MASTER, down_after_ms=1000, failover_timeout_ms=2000)
    with LocalStack(StackOptions(state_dir=tmp_path, sentinel=spec, ready_timeout=30), settings=settings) as stack:
        url = stack.start_redis()  # ready: the servers and Sentinels answered with their passwords
        both = RedisTarget(url, sentinel_master=MASTER, password="srv-pass-31f", sentinel_password="sen-pass-8a2")
        data = open_data_layer(both, "pw")
        assert data.records.create_batch(_items(1)).item_ids
        for wrong in (replace(both, password="nope"), replace(both, sentinel_password=None)):
            with pytest.raises(redis.RedisError):
                open_data_layer(wrong, "pw").ping()


def test_a_partitioned_master_back_before_its_demotion_gets_no_more_writes(tmp_path: Path) -> None:
    with _topology(tmp_path) as stack:
        data = _data(stack, prefix="healed")
        first = data.records.create_batch(_items(1))  # the client's connections are on the master now
        written = time.monotonic()
        stack.pause("redis")  # a partition, past the down-after
        wait_until(lambda: stack.redis_master() == "redis-replica-1", 30, "Sentinel to promote the replica")
        # A partition outlasts a connection's master check (down-after is 1 s here, 5 s in compose, 30 s by default).
        wait_until(lambda: time.monotonic() - written > MASTER_CHECK_INTERVAL, 5, "the check interval to pass")
        stack.resume("redis")  # back, and still answering as master until Sentinel demotes it (about 8 s)
        old = redis.Redis(port=stack.port("redis"), password=stack.passwords.server, decode_responses=True)
        assert old.info("replication")["role"] == "master"
        after = None

        def write() -> bool:  # refused while the Sentinels still call the old master down (their failover under way)
            nonlocal after
            after = data.records.create_batch(_items(1))  # the same client, its connections made before the partition
            return True

        wait_until(write, 10, "a write on the new master", interval=0.2)
        assert after is not None
        replica = f"redis://127.0.0.1:{stack.port('redis-replica-1')}/0"
        new = open_data_layer(RedisTarget(replica, password=stack.passwords.server), "healed")
        assert new.records.batch(after.batch_id) is not None and new.records.batch(first.batch_id) is not None
        assert old.info("replication")["role"] == "master"  # the write went to the new master while it was not yet
