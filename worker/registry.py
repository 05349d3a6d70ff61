"""The step registry: what each task is, in one table.

Each row names a task (its wire name, ``worker.queues.TaskName``), the queue it goes to, its typed arguments, the
step it runs, and how the dispatch treats it: bundled (one message may carry several items' steps), handing on (a
poll that frees a slot runs the freed slot's submit itself), exclusive (one run at a time cluster-wide), resent for
which item states (the reconciler's resend map), which follow-up it performs, and how often beat sends it.
Whether a step is item-scoped or sequenced follows from its arguments (``ItemArgs``, ``ChainArgs``).

Celery's tasks (``worker.tasks``), the routes, beat's schedule, the reconciler's resends and the follow-up chain
are all read from here; nothing else lists tasks. The API reads queues here too, and never imports ``worker.tasks``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as typed

from config.settings import Settings
from worker import steps
from worker.domain.followups import Kind
from worker.domain.states import ItemState
from worker.queues import Queue, TaskName
from worker.steps.context import Next, StepContext

# Sent only for Flower to show what a task is about (the source image, a cross-region copy's destination, what a
# pool's line waits on, the policy whose run it is); steps read the stored item, so these never reach a step.
SHOWN = frozenset({"image_id", "to_region", "blocked_by", "policy"})
_STRICT = ConfigDict(extra="forbid", frozen=True)


class BadArguments(ValueError):
    """A message whose arguments do not fit its task (a bug, or a message from another version): never retried."""


class _Args:
    """A step's arguments; ``SUBJECT`` (formatted with them) names what the step is about in logs."""

    SUBJECT: ClassVar[str] = "cluster"

    @property
    def subject(self) -> str:
        return self.SUBJECT.format(**dataclasses.asdict(self))  # type: ignore[call-overload]


@typed(config=_STRICT)
class ItemArgs(_Args):
    """An item's step: it is marked as worked on while it runs, and its item ID names it in logs."""

    SUBJECT = "{item_id}"
    item_id: str


@typed(config=_STRICT)
class ChainArgs(ItemArgs):
    """A step of a sequenced chain (polls, follow-ups): ``seq`` orders the chain's messages (a stale one ends
    itself), and a redelivered message may take the chain over from one that died with its worker."""

    seq: int = 0
    redelivered: bool = False


@typed(config=_STRICT)
class PollArgs(ChainArgs):
    first_look: bool = False  # a copy's first poll, sent with no forecast


@typed(config=_STRICT)
class AdmitArgs(_Args):
    SUBJECT = "{batch_id}:{cursor}"
    batch_id: str
    cursor: int = 0
    held: int = 0


@typed(config=_STRICT)
class ExpandArgs(_Args):
    SUBJECT = "{batch_id}:{marker}"  # the marker is empty for the first page
    batch_id: str
    marker: str = ""  # the image ID its listing page starts after


@typed(config=_STRICT)
class PlanArgs(_Args):
    SUBJECT = "{plan_id}:{stage}:{marker}"
    plan_id: str
    stage: str = "items"
    marker: str = ""


@typed(config=_STRICT)
class PoolArgs(_Args):
    SUBJECT = "{pool}"
    pool: str


@typed(config=_STRICT)
class AccountArgs(_Args):
    SUBJECT = "{account}"
    account: str


@typed(config=_STRICT)
class RunArgs(_Args):
    SUBJECT = "{policy_id}:{run}"
    policy_id: str
    run: int
    attempt: int = 0


@typed(config=_STRICT)
class ClusterArgs(_Args):
    pass


A = TypeVar("A")


@dataclass(frozen=True)
class Step(Generic[A]):
    name: TaskName
    queue: Queue
    args: type[A]
    run: Callable[[StepContext, A], list[Next]]
    bundled: bool = False  # its item messages go in bundles (worker.bundles)
    hands_on: bool = False  # the submits of slots it frees run in its own task (worker.middleware.hand_on)
    exclusive: bool = False  # one run at a time cluster-wide; a second is skipped, the next interval runs it
    resends: frozenset[ItemState] = frozenset()  # an overdue item in these states is sent this step again
    followup: Kind | None = None  # the follow-up it performs (tags, sharing)
    every: Callable[[Settings], float] | None = None  # beat sends it at this interval (seconds)

    _adapters: ClassVar[dict[type, TypeAdapter[Any]]] = {}

    @property
    def item_scoped(self) -> bool:
        return issubclass(self.args, ItemArgs)

    @property
    def sequenced(self) -> bool:
        return issubclass(self.args, ChainArgs)

    def parse(self, kwargs: Mapping[str, object]) -> A:
        """The message's typed arguments (what is only shown left out); ``BadArguments`` names what does not fit."""
        adapter = self._adapters.get(self.args)
        if adapter is None:
            adapter = self._adapters[self.args] = TypeAdapter(self.args)
        try:
            return adapter.validate_python({k: v for k, v in kwargs.items() if k not in SHOWN})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '-'}: {e['msg']}" for e in exc.errors())
            raise BadArguments(f"{self.name.value}: {problems}") from None


def _followup(ctx: StepContext, a: ChainArgs) -> list[Next]:
    return steps.followup(ctx, a.item_id, a.seq, redelivered=a.redelivered)


# The step functions are looked up when a step runs (``steps.x``), not bound here: the steps read this table too.
STEPS: dict[TaskName, Step[Any]] = {
    s.name: s
    for s in (
        Step(TaskName.ADMIT, Queue.ADMIT, AdmitArgs, lambda ctx, a: steps.admit(ctx, a.batch_id, a.cursor, a.held)),
        Step(TaskName.EXPAND, Queue.ADMIT, ExpandArgs, lambda ctx, a: steps.expand(ctx, a.batch_id, a.marker)),
        Step(TaskName.PLAN, Queue.ADMIT, PlanArgs, lambda ctx, a: steps.plan(ctx, a.plan_id, a.stage, a.marker)),
        Step(
            TaskName.VALIDATE,
            Queue.VALIDATE,
            ItemArgs,
            lambda ctx, a: steps.validate(ctx, a.item_id),
            # a distribution's receivers (each an accept call, then a look at its member job): made 100 at a time
            bundled=True,
            # an accepted item is due only once its admit chunk sent it a validate task of its own
            resends=frozenset({ItemState.ACCEPTED, ItemState.VALIDATING}),
        ),
        Step(
            TaskName.SUBMIT,
            Queue.SUBMIT,
            ItemArgs,
            lambda ctx, a: steps.submit(ctx, a.item_id),
            bundled=True,
            resends=frozenset({ItemState.WAITING, ItemState.SUBMITTING}),  # a waiting one only when it holds a slot
        ),
        Step(
            TaskName.POLL,
            Queue.POLL,
            PollArgs,
            lambda ctx, a: steps.poll(ctx, a.item_id, a.seq, redelivered=a.redelivered, first_look=a.first_look),
            bundled=True,
            hands_on=True,
            resends=frozenset({ItemState.REPLICATING}),
        ),
        Step(
            TaskName.NEW_IMAGES,
            Queue.FOLLOWUP,  # holds no slot (the poll freed it): after the polls that hand slots on
            AccountArgs,
            lambda ctx, a: steps.see_new_images(ctx, a.account),
            bundled=True,  # the checks of accounts whose copies ended together (each one listing call)
        ),
        Step(
            TaskName.TAG,
            Queue.FOLLOWUP,
            ChainArgs,
            _followup,
            followup=Kind.TAGS,
        ),
        Step(
            TaskName.SHARE,
            Queue.FOLLOWUP,
            ChainArgs,
            _followup,
            followup=Kind.SHARE,
        ),
        Step(
            TaskName.DISTRIBUTE,
            Queue.FOLLOWUP,
            ChainArgs,
            _followup,
            followup=Kind.DISTRIBUTE,
        ),
        Step(
            TaskName.RECONCILE,
            Queue.MAINTENANCE,
            ClusterArgs,
            lambda ctx, _: steps.reconcile(ctx),
            exclusive=True,
            every=lambda settings: settings.reconcile_interval,
        ),
        Step(
            TaskName.EXPIRE_BATCHES,
            Queue.MAINTENANCE,
            ClusterArgs,
            lambda ctx, _: steps.expire_batches(ctx),
            every=lambda settings: settings.retention_sweep_seconds,
        ),
        Step(
            TaskName.START_RUNS,
            Queue.MAINTENANCE,
            ClusterArgs,
            lambda ctx, _: steps.start_runs(ctx),
            exclusive=True,  # the claim starts each run once anyway; one tick at a time spares the work
            every=lambda settings: settings.policy_tick_seconds,
        ),
        Step(
            TaskName.RETIRE,
            Queue.FOLLOWUP,  # holds no slot; after the polls and submits that keep copies moving
            RunArgs,
            lambda ctx, a: steps.retire(ctx, a.policy_id, a.run, a.attempt),
        ),
        Step(TaskName.GRANT, Queue.MAINTENANCE, PoolArgs, lambda ctx, a: steps.grant(ctx, a.pool)),
        Step(TaskName.PROBE, Queue.MAINTENANCE, AccountArgs, lambda ctx, a: steps.probe(ctx, a.account)),
        Step(TaskName.CHECK, Queue.MAINTENANCE, AccountArgs, lambda ctx, a: steps.check_credentials(ctx, a.account)),
    )
}

ROUTES: dict[TaskName, Queue] = {name: s.queue for name, s in STEPS.items()}
BUNDLED: tuple[TaskName, ...] = tuple(name for name, s in STEPS.items() if s.bundled)
_RESENDS = {state: name for name, s in STEPS.items() for state in s.resends}
_FOLLOWUPS = {s.followup: name for name, s in STEPS.items() if s.followup is not None}


def resend_for(state: ItemState) -> TaskName | None:
    """The step an overdue item in ``state`` waits for (a finishing item's: ``followup_task``)."""
    return _RESENDS.get(state)


def followup_task(kind: Kind) -> TaskName:
    return _FOLLOWUPS[kind]


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat's entries: each periodic step on its queue; a run nobody picked up in time is superseded by the next."""
    schedule = {}
    for name, s in STEPS.items():
        if s.every is not None:
            every = s.every(settings)
            entry = name.value.rsplit(".", 1)[1].replace("_", "-")
            options = {"queue": s.queue.value, "expires": every}
            schedule[entry] = {"task": name.value, "schedule": every, "options": options}
    return schedule
