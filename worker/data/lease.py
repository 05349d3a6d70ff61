"""A lock held for as long as its holder works, in short leases renewed in the background.

A lock that simply expires after the longest a holder could run (the hard time limit) keeps everyone else out for
that long when its holder is gone without releasing it: a worker killed mid-step, or a failover that lost the
release. A lease renewed every third of its length bounds that to the lease, while a live holder keeps it for as
long as it works (docs/reliability.md, "What a failover costs"). The price: a holder frozen for longer than a
lease (a stopped host) loses the lock and still acts when it wakes. For a submit frozen between its attempt record
and its copy call, another delivery meanwhile finds no copy to adopt and makes one, and the wake-up makes a second;
with a lock that lasted the hard time limit the same held for a freeze longer than that.

No lease outlives the ``with`` statement that took it, whatever exception ends it and wherever it lands (issue 25).
Celery's soft time limit raises ``SoftTimeLimitExceeded`` from a signal handler, wherever the task's thread is
(after any call returns, at any function's start or loop's turn), and the pool process then goes on to other tasks:
a lease left registered by an exception between taking the lock and the ``with`` body, or inside the release, was
renewed for as long as that process lived. So the renewal thread keeps a lease only while the frame of its ``with``
statement is still on its thread's stack (an exception that ends the step unwinds that frame) and its holder has
not let go, and releases in the holder's place any lease that fails either test. Masking the signal around the
entry and the exit was the other way; it cannot cover the gap between ``__enter__`` returning and the ``with`` body
(or the caller's own ``try``), and a process-directed signal may be taken by any thread that does not block it.
What the holder's thread does is kept to plain assignments, a queue ``put`` and its Redis commands, and takes no
lock that the renewal thread waits on (one left held by an exception would stop every renewal in the process): the
renewal thread looks at the holder's flags again after each renewal and releases what it took back after the
holder let go, so an exception anywhere leaves nothing it cannot clean up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
import uuid
from types import FrameType, TracebackType

import redis
from redis.exceptions import LockError
from redis.lock import Lock

log = logging.getLogger("worker.data")

IDLE = 60.0  # seconds the renewal thread sleeps with no lease to look after (a new lease wakes it)


class Lease:
    """``lock`` (not thread-local: the renewing thread needs its token) held in leases of its timeout, for the
    ``with`` statement that enters it, which must be written where the lock is needed: the lease belongs to the
    frame that calls ``__enter__`` (entered through ``contextlib.ExitStack`` it would belong to ExitStack's frame,
    and be released as soon as that returns). ``as``: whether the lock was taken."""

    def __init__(self, lock: Lock) -> None:
        self._lock = lock
        self._token = uuid.uuid4().hex.encode()  # known before the lock is taken: an abandoned lease can still free it
        self._lock.local.token = self._token  # what ``reacquire`` renews
        self._owner: tuple[int, FrameType] | None = None  # the thread and frame of the ``with`` statement
        self._taken = False  # the lock is ours (set once Redis said so)
        self._letting_go = False  # the holder's exit began: renew no more (and release what a renewal took back)
        self._open = True  # until the holder's release completed (or the lock was not taken): the renewals' care
        self.every = float(lock.timeout or 0) / 3

    def __enter__(self) -> bool:
        """Take the lock without waiting; renew it until the ``with`` statement ends, or its frame does. Registered
        before the lock is taken, so that an exception just after leaves a lease the renewal thread frees."""
        self._owner = (threading.get_ident(), sys._getframe(1))
        _RENEWALS.add(self)
        self._taken = self._lock.do_acquire(self._token)
        if not self._taken:
            self._open = False  # another holder's: nothing of ours to renew or release
        return self._taken

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._letting_go = True  # first: an exception from here on leaves a lease the renewal thread releases
        if self._open:
            self._release()
            self._open = False

    def tend(self, frames: dict[int, FrameType]) -> bool:
        """The renewal thread's turn (``frames``: each thread's current frame): renew the lease, or release it for
        a holder that is gone or let go. False when the renewals are done with it."""
        kept = self._open and not self._letting_go and self._owned(frames)
        if kept and self._taken:
            self._renew()
        if kept and not self._letting_go:
            return True
        # Released here: a holder whose exit was cut short or never came (the frame that took it is gone), or one
        # that let go during the renewal, which may have taken the lock back after the holder's release.
        if kept or self._open:
            if not self._letting_go:
                log.warning("lock %s released for a holder that left it behind", self._lock.name)
            with contextlib.suppress(redis.RedisError):  # unreachable: it lapses within a lease, unrenewed
                self._release()
            self._open = False
        self._owner = None  # its frame, and the locals that frame holds, may go
        return False

    def _owned(self, frames: dict[int, FrameType]) -> bool:
        """Whether the frame of the ``with`` statement is still on its thread's stack."""
        if self._owner is None:
            return False
        thread, owner = self._owner
        frame = frames.get(thread)
        while frame is not None and frame is not owner:
            frame = frame.f_back
        return frame is not None

    def _release(self) -> None:
        with contextlib.suppress(LockError):  # expired, or lost in a failover: nothing of ours is left to release
            self._lock.do_release(self._token)

    def _renew(self) -> None:
        try:
            self._lock.reacquire()
        except LockError:
            # A failover lost the lock (or a stall outlived the lease): take it back unless another holds it.
            if not self._lock.do_acquire(self._token):
                log.warning("lock %s was taken by another holder while this one worked", self._lock.name)
        except redis.RedisError:
            pass  # Redis unreachable for now (a failover under way): the next renewal tries again


class _Renewals:
    """Looks after every lease taken in this process from one daemon thread, each every third of its length: a
    thread started and joined per lease cost a submit more CPU than its Redis commands. A holder only puts its
    lease in the inbox (a C-level queue: no exception lands half-way through); the rest happens on this thread."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """Start empty; so does a forked child: it holds none of its parent's leases, nor its thread."""
        self._inbox: queue.SimpleQueue[Lease] = queue.SimpleQueue()
        self._dues: list[dict[Lease, float]] = []  # each thread's leases -> when each is next looked at (monotonic)
        self._pid = 0  # the process whose thread runs

    def add(self, lease: Lease) -> None:
        self._inbox.put(lease)
        if self._pid != os.getpid():
            # Started before it is recorded: an exception in between starts a second one later (sharing the
            # inbox, each with leases of its own), never none.
            self._dues.append(due := {})
            args = (self._inbox, due)
            threading.Thread(target=self._run, args=args, name="lease renewals", daemon=True).start()
            self._pid = os.getpid()

    def looks_after(self, lease: Lease) -> bool:
        """Whether the lease may still be renewed or released here (for tests: while any lease waits in the
        inbox, every lease counts)."""
        return any(lease in due for due in self._dues) or not self._inbox.empty()

    @staticmethod
    def _run(inbox: queue.SimpleQueue[Lease], due: dict[Lease, float]) -> None:
        while True:
            now = time.monotonic()
            with contextlib.suppress(queue.Empty):
                lease = inbox.get(timeout=max(0.0, min(due.values(), default=now + IDLE) - now))
                due[lease] = time.monotonic() + lease.every
            now = time.monotonic()
            ready = [lease for lease, at in due.items() if at <= now]
            frames = sys._current_frames() if ready else {}
            for lease in ready:  # one round trip each
                try:
                    kept = lease.tend(frames)
                except Exception:  # the thread must outlive any one lease: the others still need it
                    log.exception("lease renewal failed; the lock lapses unless its holder is done with it")
                    kept = False
                if kept:
                    due[lease] = now + lease.every
                else:
                    del due[lease]
            del frames  # not kept across the wait: they hold their threads' locals


_RENEWALS = _Renewals()
