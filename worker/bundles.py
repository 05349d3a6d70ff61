"""Bundles: the messages of one step for several items (or accounts) sent as one message, their steps run side by side.

Each message costs more than the step it carries on a busy worker: its publish and ``task-sent`` event, the BRPOP
and hand-over to a pool process, the ``task-received``/``-started``/``-succeeded`` events, the ack (a MULTI), about
half of a submit's CPU. And a pool process holds a message while its steps wait on the cloud: with IMS 150-300 ms
away, how many steps wait at once is how many a message carries, times the pool processes. An admit chunk's grants
(five slots each, for every account in the chunk), those copies' first polls (all due after the same delay, or the
same forecast), the end polls of copies that started together, the new-image checks of accounts whose copies
ended together, and the validations of a distribution's receiver items (made together: their accepts, then their
member jobs' looks, are due together; docs/performance.md "Distribution (issue 30)") go as one message
(``{"bundle": [kwargs, ...]}``) of up to ``SIZE``; a poll may wait a little past its own due time to go with others
(``SLACK``), never less than its own. Every item still runs its own step, with its own checks, locks and poll
sequence: a bundle changes only how many messages carry them (``worker.dispatch.poison_guard`` splits a bundle that
comes back redelivered, so that an item that kills its worker is told from the others).
"""

from __future__ import annotations

from worker.queues import TaskName
from worker.registry import BUNDLED
from worker.steps.context import Next

# Five accounts' grants: a message's steps run side by side on the step threads (``IMSREP_STEP_THREADS``, more than
# SIZE so that the submits a poll bundle hands on start at once), so a bundle waits on the cloud about as long as one.
SIZE = 25
SHORT = 5  # IMS's concurrent copies per project: one grant's
LONG = 10.0  # seconds: a copy at least this long (a poll's span) has its polls bundled SIZE at a time
FAR = 0.05  # seconds: IMS round trips at least this long make the cloud far (a loopback simulator's take 1-5 ms)
# A poll may be held past its due time to share a message: by a second at most, and by 2 % of the copy's age then
# (its ``span``; a 2 s copy's poll by 0.04 s, a 60 s copy's by a second, about as much as the estimate of its end
# from progress in hundredths is uncertain), and a first look by as long as its message's steps took to ask. Measured
# at 150 ms (docs/performance.md, "Latency"): 1 % and a quarter second left the end polls of a first wave in
# messages of three or four, and the slots idle for 7 s waiting on pool processes.
SLACK = 1.0
SLACK_SHARE = 0.02
# On a near cloud a message costs its CPU and little waiting, so its end polls are held by a quarter of that share:
# a 2 s copy's poll by 0.01 s, not 0.04 s, which on the `projects` bench left each slot idle that much longer at
# each hand-off (docs/performance.md, "What bounds many projects").
NEAR_SLACK_SHARE = 0.005


def bundle(nexts: list[Next], spread: float = 0.0, *, far: bool = True) -> list[Next]:
    """``nexts`` with the item messages of each bundled step grouped: the others first, in their order. ``spread``:
    how far apart their steps asked (a message's parts run side by side and end at different moments); ``far``:
    the cloud's round trips take ``FAR`` or more (``worker.ims.roundtrip``), else messages carry ``SHORT``."""
    out = [n for n in nexts if not _bundled(n)]
    for task in BUNDLED:
        group: list[Next] = []
        for n in sorted((n for n in nexts if n.task is task and _bundled(n)), key=lambda n: n.countdown):
            if group and not _joins(group, n, spread, far):
                out.append(_message(group))
                group = []
            group.append(n)
        if group:
            out.append(_message(group))
    return out


def unbundle(kwargs: dict[str, object]) -> list[dict[str, object]]:
    """The items' own keyword arguments carried by one message: a bundle's, or the message's own."""
    items = kwargs.get("bundle")
    return [dict(item) for item in items] if isinstance(items, list) else [kwargs]


def _joins(group: list[Next], n: Next, spread: float, far: bool) -> bool:
    """Whether ``n`` goes in the message of ``group`` (sorted by countdown): room left, and due within its slack."""
    first = group[0]
    return len(group) < _size(first, far) and n.countdown <= first.countdown + _slack(first, spread, far)


def _span(n: Next) -> float:
    return n.countdown if n.span is None else n.span


def _slack(n: Next, spread: float, far: bool) -> float:
    """How long past its due time the message may be held. A copy's first look (no forecast yet: its length is
    unknown) may also wait as long as its message's steps took to ask, so that a grant's copies stay together; so
    may a validation (receivers' looks at their member jobs, asked by one message's accepts)."""
    held = (SLACK_SHARE if far else NEAR_SLACK_SHARE) * _span(n)
    together = n.kwargs.get("first_look") or n.task is TaskName.VALIDATE
    return min(SLACK, max(held, spread) if together else held)


def _size(n: Next, far: bool) -> int:
    """The most steps a message carries: a message's steps wait on the cloud side by side, but their own work runs
    one after another (4-8 ms each), so 25 polls hand their last slot on about 0.2 s late: a tenth of a 2 s copy.
    On a near cloud, and for the polls of copies shorter than ``LONG``, messages carry ``SHORT``."""
    if not far or (n.task is TaskName.POLL and not n.kwargs.get("first_look") and _span(n) < LONG):
        return SHORT
    return SIZE


def _bundled(n: Next) -> bool:
    return n.task in BUNDLED and "bundle" not in n.kwargs


def _message(group: list[Next]) -> Next:
    if len(group) == 1:
        return group[0]
    return Next(group[0].task, {"bundle": [dict(n.kwargs) for n in group]}, group[-1].countdown)
