"""Lease: a lock kept while its holder works, free soon after the holder is gone, taken back after a failover lost
it (against a real Redis server)."""

from __future__ import annotations

import time

from cli.processes import wait_until

LEASE = 0.3  # seconds; renewed every 0.1 s


def _key(data, item_id: str) -> str:
    return data.keys.submit_lock(item_id)


def test_a_holder_at_work_keeps_the_lock_past_many_leases(redis_server) -> None:
    data = redis_server.data()
    lease = data.control.submit_lock("busy", lease=LEASE)
    assert lease.acquire()
    try:
        deadline = time.monotonic() + 4 * LEASE
        while time.monotonic() < deadline:  # the key never lapses while the holder works
            assert redis_server.client().pttl(_key(data, "busy")) > 0
            time.sleep(0.02)
        assert not data.control.submit_lock("busy", lease=LEASE).acquire()  # and another delivery stays out
    finally:
        lease.release()
    assert redis_server.client().exists(_key(data, "busy")) == 0
    assert data.control.submit_lock_left("busy") == 0.0


def test_a_lock_whose_release_was_lost_frees_within_one_lease(redis_server) -> None:
    data = redis_server.data()
    # What a failover leaves when the new primary had the lock but not its release: a holder nobody renews.
    redis_server.client().set(_key(data, "ghost"), "gone-holder", px=int(LEASE * 1000))
    assert 0 < data.control.submit_lock_left("ghost") <= LEASE
    wait_until(lambda: data.control.submit_lock("ghost", lease=LEASE).acquire(), timeout=2 * LEASE + 1,
               what="the ghost lock to lapse")


def test_a_live_holder_takes_its_lock_back_when_a_failover_lost_it(redis_server) -> None:
    data = redis_server.data()
    lease = data.control.submit_lock("lost", lease=LEASE)
    assert lease.acquire()
    token = redis_server.client().get(_key(data, "lost"))
    redis_server.client().delete(_key(data, "lost"))  # the new primary never had it
    try:
        wait_until(lambda: redis_server.client().get(_key(data, "lost")) == token, timeout=2,
                   what="the holder to take its lock back")
    finally:
        lease.release()
    assert redis_server.client().exists(_key(data, "lost")) == 0


def test_releasing_a_lock_that_lapsed_is_not_an_error(redis_server) -> None:
    data = redis_server.data()
    lease = data.control.submit_lock("lapsed", lease=LEASE)
    assert lease.acquire()
    redis_server.client().set(_key(data, "lapsed"), "another-holder", px=5000)  # lapsed, and another took it
    lease.release()
    assert redis_server.client().get(_key(data, "lapsed")) == "another-holder"  # theirs is left alone
