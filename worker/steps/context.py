"""What every step needs (settings, the data layer, one IMS client per account) and what it returns (``Next``)."""

from __future__ import annotations

import contextvars
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from config.settings import AccountSettings, Settings
from worker.data import DataLayer
from worker.domain.followups import PROVENANCE_POLICY
from worker.domain.item import ReplicationItem
from worker.errors import AuthenticationError
from worker.ims.client import ImsClient
from worker.ims.roundtrip import RoundTrip
from worker.queues import TaskName

if TYPE_CHECKING:
    from worker.behind import Behind

T = TypeVar("T")
R = TypeVar("R")
AUTH_FAILURE_HOLD = 300  # seconds; 5 bad AK/SK signatures lock the key for 5 minutes, so don't add more


@dataclass(frozen=True)
class Next:
    """A task to send, with its keyword arguments and countdown: what a step asks the Celery layer to do."""

    task: TaskName
    kwargs: Mapping[str, object]  # a bundle's are its items' (worker.bundles)
    countdown: float = 0.0
    # Seconds from the start of what the message waits on to when it is due (a poll's: the copy's age then), if
    # longer than its countdown: it may be held past its due time by a share of that to go with others (worker.bundles).
    span: float | None = None
    # When the step asked (monotonic seconds): the countdown runs from then, not from when the task sends the
    # message, which for a bundle's first item is after all the others have run.
    asked: float = field(default_factory=time.monotonic, init=False, compare=False, repr=False)

    def from_now(self, now: float | None = None) -> Next:
        """The same message with the countdown left of it at ``now`` (monotonic seconds; the present by default:
        messages sent together are given one, so that their due times compare as the steps asked for them)."""
        now = time.monotonic() if now is None else now
        return replace(self, countdown=max(0.0, self.countdown - (now - self.asked)))

    @classmethod
    def for_item(cls, task: TaskName, item: ReplicationItem, countdown: float = 0.0, **extra: str | int) -> Next:
        # A policy's item names its policy too (its provenance tag), for Flower alone, like the image ID below.
        if policy := (item.tags or {}).get(PROVENANCE_POLICY):
            extra = {"policy": policy, **extra}
        return cls.for_ids(task, item.id, item.image_id, item.target_region, countdown, **extra)

    @classmethod
    def for_ids(
        cls, task: TaskName, item_id: str, image_id: str, region: str | None, countdown: float = 0.0, **extra: str | int
    ) -> Next:
        # The image ID (and a cross-region copy's destination) ride along only so Flower shows what a task is
        # about; steps read the stored item.
        where = {"to_region": region} if region else {}
        return cls(task, {"item_id": item_id, "image_id": image_id, **where, **extra}, max(0.0, countdown))


@dataclass
class StepContext:
    settings: Settings
    data: DataLayer
    clients: Callable[[str], ImsClient]  # account name -> that account's client
    # (account, region, project ID) -> that account's client in another project (a cross-region destination)
    destinations: Callable[[str, str, str], ImsClient] | None = None
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    # (account, region, project name) -> project ID, as IAM answered (names and IDs of projects do not change)
    project_ids: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # The process's step threads: a message's several steps run on them side by side (worker.dispatch.run_parts)
    parallel: Executor | None = None
    round_trip: RoundTrip = field(default_factory=RoundTrip)  # the clients' IMS round trips (worker.bundles)
    # Steps left at work on the step threads behind their message (worker.behind); None: a message runs them itself
    behind: Behind | None = None

    def account(self, name: str) -> AccountSettings | None:
        return self.settings.accounts.get(name)

    def client(self, account: str) -> ImsClient:
        """The account's client; while its credentials are on hold (refused a moment ago), each of its requests
        raises ``AuthenticationError`` before it is sent (``worker.ratelimit``)."""
        return self.clients(account)

    def destination(self, item: ReplicationItem) -> ImsClient:
        """The client of a cross-region item's destination project (validation resolved its ID), with the account's
        credentials and under the same hold; the account's own client for an in-region item."""
        if item.target_region is None:
            return self.client(item.account)
        assert self.destinations is not None and item.target_project_id, item.id
        return self.destinations(item.account, item.target_region, item.target_project_id)

    def credentials_refused(self, account: str, error: AuthenticationError) -> None:
        if error.endpoint is None:  # the hold refused it before it was sent (worker.ratelimit): already held
            return
        self.data.accounts.hold(account, error.for_account(account), AUTH_FAILURE_HOLD)

    def each(self, fn: Callable[[T], R], args: Iterable[T]) -> list[R]:
        """``fn`` of each of ``args``, side by side on the step threads (each mostly waits on the cloud), in turn
        without them; in ``args``' order. The first exception is raised once all have ended."""
        if self.parallel is None:
            return [fn(a) for a in args]
        futures = [on_step_thread(self.parallel, fn, a) for a in args]
        wait(futures)
        return [f.result() for f in futures]

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        ceiling = min(self.settings.retry_max_delay, self.settings.retry_base_delay * 2 ** max(0, attempt - 1))
        return self.rng.uniform(0, ceiling)


# Set by the hand-on middleware (worker.dispatch.hand_on) while a step that hands slots on runs: starts the submits
# among the nexts given and returns the rest. Outside it (the steps tier's own calls) nothing starts early.
HANDING_ON: contextvars.ContextVar[Callable[[list[Next]], list[Next]]] = contextvars.ContextVar(
    "handing_on", default=lambda nexts: nexts
)


def hand_on_now(nexts: list[Next]) -> list[Next]:
    """Start the submits of slots a step has just freed now, not when the step ends (a bundle's worth, if there is
    room behind the task: ``worker.dispatch.hand_on``); what is left of ``nexts`` to ask for as usual."""
    return HANDING_ON.get()(nexts)


def on_step_thread(pool: Executor, fn: Callable[..., R], *args: object) -> Future[R]:
    """``fn(*args)`` on one of the step threads, in a copy of this thread's context (its log records keep the task
    and item they are about)."""
    return pool.submit(contextvars.copy_context().run, fn, *args)


def expect(ctx: StepContext, nexts: list[Next]) -> None:
    """Record when the steps about to be sent are due, so the reconciler can tell a lost step from a slow one:
    an item's next step, or a batch's next admit chunk (and add up the cloud's answers counted meanwhile)."""
    now = ctx.clock()
    ctx.data.steps_sent({str(n.kwargs["item_id"]): now + n.countdown for n in nexts if "item_id" in n.kwargs})
    for n in nexts:
        if n.task is TaskName.ADMIT:
            batch_id, cursor = str(n.kwargs["batch_id"]), int(n.kwargs.get("cursor", 0))
            ctx.data.records.admit_progress(batch_id, cursor, now + n.countdown)
