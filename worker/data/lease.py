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
import os
import threading
import time

import redis
from redis.exceptions import LockError
from redis.lock import Lock

log = logging.getLogger("worker.data")


class Lease:
    """``lock`` (not thread-local: the renewing thread needs its token) held in leases of its timeout."""

    def __init__(self, lock: Lock) -> None:
        self._lock = lock
        self._mutex = threading.Lock()  # a renewal and the release never overlap: none may take back a released lock
        self._held = False
        self.every = float(lock.timeout or 0) / 3

    def acquire(self) -> bool:
        """Take the lock without waiting; renew it until ``release`` when taken."""
        if not self._lock.acquire(blocking=False):
            return False
        self._held = True
        _RENEWALS.add(self)
        return True

    def release(self) -> None:
        _RENEWALS.remove(self)
        with self._mutex:
            self._held = False
            with contextlib.suppress(LockError):  # expired, or lost in a failover: nothing of ours is left to release
                self._lock.release()

    def renew(self) -> None:
        with self._mutex:
            if not self._held:
                return
            try:
                self._lock.reacquire()
            except LockError:
                # A failover lost the lock (or a stall outlived the lease): take it back unless another holds it.
                if not self._lock.acquire(blocking=False, token=self._lock.local.token):
                    log.warning("lock %s was taken by another holder while this one worked", self._lock.name)
            except redis.RedisError:
                pass  # Redis unreachable for now (a failover under way): the next renewal tries again


class _Renewals:
    """Renews every lease held in this process from one daemon thread, each every third of its length: a thread
    started and joined per lease cost a submit more CPU than its Redis commands."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """Start empty; so does a forked child: it holds none of its parent's leases, nor its thread, nor (it may
        have been held at the fork) its condition."""
        self._wake = threading.Condition()
        self._due: dict[Lease, float] = {}  # lease -> when it is next renewed (monotonic)
        self._pid = 0  # the process whose thread runs

    def add(self, lease: Lease) -> None:
        with self._wake:
            self._due[lease] = time.monotonic() + lease.every
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="lease renewals", daemon=True).start()
            self._wake.notify()

    def remove(self, lease: Lease) -> None:
        with self._wake:
            self._due.pop(lease, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [lease for lease, at in self._due.items() if at <= now]
                for lease in due:
                    self._due[lease] = now + lease.every
                if not due:
                    self._wake.wait(min(self._due.values(), default=now + 60) - now)
                    continue
            for lease in due:  # outside the condition: a renewal is a round trip
                lease.renew()


_RENEWALS = _Renewals()
