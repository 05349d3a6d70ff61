"""A lock held for as long as its holder works, in short leases renewed in the background.

A lock that simply expires after the longest a holder could run (the hard time limit) keeps everyone else out for
that long when its holder is gone without releasing it: a worker killed mid-step, or a failover that lost the
release. A lease renewed every third of its length bounds that to the lease, while a live holder keeps it for as
long as it works (docs/reliability.md, "What a failover costs"). The price: a holder frozen for longer than a
lease (a stopped host) loses the lock and still acts when it wakes. For a submit frozen between its attempt record
and its copy call, another delivery meanwhile finds no copy to adopt and makes one, and the wake-up makes a second;
with a lock that lasted the hard time limit the same held for a freeze longer than that.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import redis
from redis.exceptions import LockError
from redis.lock import Lock

log = logging.getLogger("worker.data")


class Lease:
    """``lock`` (not thread-local: the renewing thread needs its token) held in leases of its timeout."""

    def __init__(self, lock: Lock) -> None:
        self._lock = lock
        self._done = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; renew it until ``release`` when taken."""
        if not self._lock.acquire(blocking=False):
            return False
        self._renewer = threading.Thread(target=self._renew, name=f"lease {self._lock.name}", daemon=True)
        self._renewer.start()
        return True

    def release(self) -> None:
        self._done.set()
        if self._renewer is not None:
            self._renewer.join()
        with contextlib.suppress(LockError):  # expired, or lost in a failover: nothing of ours is left to release
            self._lock.release()

    def _renew(self) -> None:
        every = float(self._lock.timeout or 0) / 3
        while not self._done.wait(every):
            try:
                self._lock.reacquire()
            except LockError:
                # A failover lost the lock (or a stall outlived the lease): take it back unless another holds it.
                if not self._lock.acquire(blocking=False, token=self._lock.local.token):
                    log.warning("lock %s was taken by another holder while this one worked", self._lock.name)
            except redis.RedisError:
                pass  # Redis unreachable for now (a failover under way): the next renewal tries again
