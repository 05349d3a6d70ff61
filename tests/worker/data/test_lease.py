"""Lease: a lock kept while its holder works, free soon after the holder is gone, taken back after a failover lost
it (against a real Redis server)."""

from __future__ import annotations

from cli.processes import wait_until

LEASE = 0.3  # seconds; renewed every 0.1 s


def _key(data, item_id: str) -> str:
    return data.keys.submit_lock(item_id)


def test_a_holder_at_work_keeps_the_lock_past_many_leases(redis_server) -> None:
    data = redis_server.data()
    client = redis_server.client()
    seen = {"last": 0, "renewals": 0, "lapses": 0}

    def renewed_often() -> bool:  # (``wait_until`` takes a raising check for "not yet": lapses are counted)
        left = client.pttl(_key(data, "busy"))
        seen["lapses"] += left <= 0
        seen["renewals"] += left > seen["last"] > 0
        seen["last"] = left
        return seen["renewals"] >= 4

    with data.control.submit_lock("busy", lease=LEASE) as taken:
        assert taken
        wait_until(renewed_often, timeout=20 * LEASE, what="four renewals", interval=0.02)
        assert seen["lapses"] == 0  # the key never lapsed while the holder worked
        with data.control.submit_lock("busy", lease=LEASE) as also:
            assert not also  # another delivery stays out
    assert client.exists(_key(data, "busy")) == 0
    assert data.control.submit_lock_left("busy") == 0.0


def test_a_lock_whose_release_was_lost_frees_within_one_lease(redis_server) -> None:
    data = redis_server.data()
    # What a failover leaves when the new primary had the lock but not its release: a holder nobody renews.
    redis_server.client().set(_key(data, "ghost"), "gone-holder", px=int(LEASE * 1000))
    assert 0 < data.control.submit_lock_left("ghost") <= LEASE

    def taken() -> bool:
        with data.control.submit_lock("ghost", lease=LEASE) as held:
            return held

    wait_until(taken, timeout=2 * LEASE + 1, what="the ghost lock to lapse")


def test_a_live_holder_takes_its_lock_back_when_a_failover_lost_it(redis_server) -> None:
    data = redis_server.data()
    client = redis_server.client()
    with data.control.submit_lock("lost", lease=LEASE) as taken:
        assert taken
        token = client.get(_key(data, "lost"))
        client.delete(_key(data, "lost"))  # the new primary never had it
        wait_until(lambda: client.get(_key(data, "lost")) == token, timeout=2, what="the holder to take it back")
    assert client.exists(_key(data, "lost")) == 0


def test_releasing_a_lock_that_lapsed_is_not_an_error(redis_server) -> None:
    data = redis_server.data()
    with data.control.submit_lock("lapsed", lease=LEASE) as taken:
        assert taken
        redis_server.client().set(_key(data, "lapsed"), "another-holder", px=5000)  # lapsed, and another took it
    assert redis_server.client().get(_key(data, "lapsed")) == "another-holder"  # theirs is left alone


def test_a_lease_whose_frame_is_gone_is_released_for_it(redis_server) -> None:
    data = redis_server.data()
    lease = data.control.submit_lock("left", lease=LEASE)

    def take_and_leave() -> None:  # entered, never exited: what an exception inside __enter__ would leave
        assert lease.__enter__()

    take_and_leave()
    wait_until(lambda: redis_server.client().exists(_key(data, "left")) == 0, timeout=2 * LEASE + 1,
               what="the renewals to release the lease of a frame that ended")  # fmt: skip
