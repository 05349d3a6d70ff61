"""Bundles: the messages of one step for several items sent as one message, run one item after the other.

Each message costs more than the step it carries on a busy worker: its publish and ``task-sent`` event, the BRPOP
and hand-over to a pool process, the ``task-received``/``-started``/``-succeeded`` events, the ack (a MULTI), about
half of a submit's CPU. An account's grant hands out up to five slots at once, whose submits, and then those copies'
first polls (all due after the same delay, or the same forecast), were five messages each; so were the end polls of
copies that started together. Such messages go as one (``{"bundle": [kwargs, ...]}``) of up to ``SIZE`` items; a
poll may wait a little past its own due time to go with others (``SLACK``), never less than its own. Every item
still runs its own step, with its own checks, locks and poll sequence: a bundle changes only how many messages carry
them (``worker.dispatch.poison_guard`` splits a bundle that comes back redelivered, so that an item that kills its
worker is told from the others).
"""

from __future__ import annotations

from worker.registry import BUNDLED
from worker.steps.context import Next

SIZE = 5  # IMS's default concurrent copies per project: one grant's submits, or their copies' polls
# A poll may be held past its due time to share a message: by a quarter second at most, and by 1 % of its countdown
# (a 2 s copy's poll by 0.02 s, where a quarter second would be an eighth of the copy): no more than half its margin.
SLACK = 0.25
SLACK_SHARE = 0.01


def bundle(nexts: list[Next]) -> list[Next]:
    """``nexts`` with the item messages of each bundled step grouped: the others first, in their order."""
    out = [n for n in nexts if not _bundled(n)]
    for task in BUNDLED:
        group: list[Next] = []
        for n in sorted((n for n in nexts if n.task is task and _bundled(n)), key=lambda n: n.countdown):
            if group and (len(group) == SIZE or n.countdown > group[0].countdown + _slack(group[0].countdown)):
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


def _slack(countdown: float) -> float:
    return min(SLACK, SLACK_SHARE * countdown)


def _bundled(n: Next) -> bool:
    return n.task in BUNDLED and "item_id" in n.kwargs


def _message(group: list[Next]) -> Next:
    if len(group) == 1:
        return group[0]
    return Next(group[0].task, {"bundle": [dict(n.kwargs) for n in group]}, group[-1].countdown)
