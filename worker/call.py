"""One message being run: what it carries (its parts: one per item of a bundle), what its steps asked to send, and
how messages are sent (their due times recorded first, the bundled steps' messages grouped). See ``worker.dispatch``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from worker.bundles import FAR, bundle, unbundle
from worker.queues import TaskName
from worker.registry import STEPS, Step
from worker.steps.context import Next, StepContext, expect

# Puts messages on their queues (Celery's producer in a worker; a test's own queue in the steps tier).
Publish = Callable[[list[Next]], None]


class HandBack(Exception):
    """Redis refuses writes: the message goes back to the broker as it came (``Reject(requeue=True)`` in Celery)."""


@dataclass(frozen=True)
class Message:
    task: TaskName
    kwargs: Mapping[str, object]
    id: str = ""
    redelivered: bool = False  # handed out again: its worker died, was killed or shut down holding it

    @classmethod
    def of(cls, nxt: Next, **delivery: Any) -> Message:
        return cls(nxt.task, nxt.kwargs, **delivery)


@dataclass(frozen=True)
class Part:
    """One step a message carries."""

    step: Step[Any]
    args: Any  # the step's typed arguments (worker.registry)
    message: Next  # the step as a message of its own: to send it again

    @property
    def subject(self) -> str:
        return str(self.args.subject)

    @property
    def item_id(self) -> str | None:
        return self.args.item_id if self.step.item_scoped else None

    def run(self, ctx: StepContext) -> list[Next]:
        return self.step.run(ctx, self.args)


def part(nxt: Next, *, redelivered: bool = False) -> Part:
    """``nxt`` as a part; a redelivered chain step may take its chain over (``worker.registry.ChainArgs``)."""
    step = STEPS[nxt.task]
    args = step.parse(nxt.kwargs)
    if redelivered and step.sequenced:
        args = dataclasses.replace(args, redelivered=True)
    return Part(step, args, Next(nxt.task, dict(nxt.kwargs)))


def parts(message: Message) -> list[Part]:
    kwargs = unbundle(dict(message.kwargs)) if STEPS[message.task].bundled else [dict(message.kwargs)]
    return [part(Next(message.task, k), redelivered=message.redelivered) for k in kwargs]


def send(ctx: StepContext, publish: Publish, nexts: list[Next], *, bundled: bool = True) -> None:
    """Record when each message's step is due (the reconciler resends one that never ran), then publish them: the
    items' validations, submits, polls and new-image checks in bundles (``worker.bundles``) unless ``bundled`` is
    False."""
    if not nexts:
        return
    spread = max(n.asked for n in nexts) - min(n.asked for n in nexts)
    now = time.monotonic()
    nexts = [n.from_now(now) for n in nexts]
    expect(ctx, nexts)
    publish(bundle(nexts, spread, far=ctx.round_trip.seconds >= FAR) if bundled else nexts)


@dataclass
class LeftBehind:
    """A message's steps left at work behind it (``worker.behind``). What they ask for goes with the message's own
    asks if they have ended by the time it sends them, else together once the last has ended: a wave's first polls
    share messages, as they did when the task ran its submits itself."""

    left: int = 0
    sealed: bool = False
    nexts: list[Next] = field(default_factory=list)


@dataclass
class Call:
    """A message at work: its parts still to run (``pending``) and what the steps that ran asked for (``nexts``)."""

    ctx: StepContext
    message: Message
    publish: Publish
    parts: list[Part]
    pending: deque[Part] = field(init=False)
    inline: Part | None = None  # the part at work in this thread
    running: dict[Future[list[Next]], Part] = field(default_factory=dict)  # the parts at work on step threads
    nexts: list[Next] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    behind: LeftBehind = field(default_factory=LeftBehind)  # its steps left at work behind it (worker.behind)

    def __post_init__(self) -> None:
        self.pending = deque(self.parts)

    @property
    def step(self) -> Step[Any]:
        return STEPS[self.message.task]

    @property
    def subject(self) -> str:
        return ", ".join(p.subject for p in self.parts)

    def send(self, nexts: list[Next], *, bundled: bool = True) -> None:
        send(self.ctx, self.publish, nexts, bundled=bundled)

    def unfinished(self) -> list[Part]:
        """The parts not done: at work, then not started."""
        return ([self.inline] if self.inline else []) + list(self.running.values()) + list(self.pending)

    def defer_rest(self, countdown: float = 0.0) -> None:
        """The parts not yet run go in a message of their own, ``countdown`` seconds from now."""
        self.nexts += [dataclasses.replace(p.message, countdown=countdown) for p in self.pending]
        self.pending.clear()
