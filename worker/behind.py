"""Steps left at work behind their message: the submits a poll hands on go on on the step threads after the poll's
task has returned, so that its pool process takes its next message while those copy calls wait on the cloud.

With IMS 150-300 ms away a hand-off is two round trips, the poll's GET and the freed slot's POST, and a pool process
held its message for both: four processes handed slots on at about 130 a second, and the end polls of a wave of
copies that ended together waited seconds for a process (docs/performance.md, "Latency"). Left behind, the POSTs
overlap the next message's GETs.

What a late ack gave the submits before, the reconciler gives them now, as it did already for a worker lost while
its poll message was at work: their items are due by the task's hard limit (``worker.dispatch.hand_on``), so a
submit lost with its process is sent again then, and a submit is idempotent. ``limit`` bounds the steps behind a
process (past it a poll runs its submits in its own task again, as before); a process that is stopping waits for
them (``drain``), a little, before it exits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future

from worker.call import LeftBehind, Part, Publish, send
from worker.steps.context import Next, StepContext, on_step_thread

log = logging.getLogger("worker.tasks")

RunPart = Callable[[Part], list[Next]]


class Behind:
    def __init__(self, pool: Executor, limit: int) -> None:
        self._pool = pool
        self._limit = limit
        self._idle = threading.Condition()
        self._count = 0  # steps started and not yet through ``_ended``

    def start(self, ctx: StepContext, publish: Publish, group: LeftBehind, parts: list[Part], run: RunPart) -> bool:
        """Run ``parts`` of ``group`` on the step threads; False (nothing started) when that would put more than
        ``limit`` steps behind this process."""
        with self._idle:
            if group.sealed or self._count + len(parts) > self._limit:
                return False
            self._count += len(parts)
            group.left += len(parts)
        for p in parts:  # a callback runs at once, in this thread, if its step has already ended
            on_step_thread(self._pool, run, p).add_done_callback(lambda f, p=p: self._ended(ctx, publish, group, p, f))
        return True

    def seal(self, group: LeftBehind) -> list[Next]:
        """The message is sending its asks: those of its steps behind that have all ended go with them; if some are
        still at work, the last to end sends them all."""
        with self._idle:
            group.sealed = True
            if group.left:
                return []
            nexts, group.nexts = group.nexts, []
            return nexts

    def _ended(
        self, ctx: StepContext, publish: Publish, group: LeftBehind, p: Part, future: Future[list[Next]]
    ) -> None:
        with self._idle:
            if (error := future.exception()) is not None:
                # Its item stays due: the reconciler sends its step again (the submit is idempotent).
                log.error("%s for %s failed behind its message: %r", p.step.name.value, p.subject, error)
            else:
                group.nexts += future.result()
            group.left -= 1
            nexts: list[Next] = []
            if group.sealed and not group.left:
                nexts, group.nexts = group.nexts, []
        try:
            send(ctx, publish, nexts)
        except Exception as error:  # Redis refused: the items are due, the reconciler sends their steps
            log.error("what %d steps left behind asked for was not sent: %r", len(nexts), error)
        finally:
            with self._idle:
                self._count -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the steps behind to end and their asks to be sent (a process about to
        exit); whether they have."""
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)
