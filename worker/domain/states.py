"""The life of a replication item: its states, the events that move it, and the one table of legal moves.

``MOVES`` is the only source of which transitions are allowed: callers name an event, the event names its target
state and the states it may happen in, and the record store's script is handed exactly those (``worker.data``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ItemState(str, Enum):
    ACCEPTED = "accepted"  # stored by the API, not yet looked at by a worker
    VALIDATING = "validating"  # a worker is checking the image and key rules against IMS and KMS
    WAITING = "waiting"  # valid, queued for one of the account's replication slots
    SUBMITTING = "submitting"  # holds a slot; the copy call is being made (or its result adopted)
    REPLICATING = "replicating"  # IMS accepted the copy; its job is being polled
    FINISHING = "finishing"  # the copy is active and its slot free; its tags and shares are being applied
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"  # validation said no; IMS's copy call was never made
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({ItemState.SUCCEEDED, ItemState.REJECTED, ItemState.FAILED, ItemState.CANCELLED})


class Event(str, Enum):
    START_VALIDATION = "start_validation"  # a worker takes an accepted item
    RESUME_VALIDATION = "resume_validation"  # a redelivered validate finds the item validating
    VALIDATED = "validated"  # every rule holds: queue for a slot
    REJECT = "reject"  # a rule is broken: IMS's copy call is never made
    START_SUBMIT = "start_submit"  # the item was granted a slot
    HAND_BACK = "hand_back"  # IMS is full (copies of others, or the image quota): back in line, nothing copied
    COPY_STARTED = "copy_started"  # IMS accepted the copy (or an earlier attempt's copy was adopted)
    COPIED = "copied"  # the new image is active and follow-ups (tags, sharing) remain
    SUCCEED = "succeed"  # the new image is active (and its follow-ups are done, or said what they did not do)
    FAIL = "fail"  # IMS failed the copy, refused it, or the item ran out of retries
    CANCEL = "cancel"  # the user cancelled before the copy call
    RETRY = "retry"  # the user retries a failed item as a new attempt
    RESUME = "resume"  # the user resumes a cancelled item as a new attempt


@dataclass(frozen=True)
class Move:
    sources: frozenset[ItemState]
    target: ItemState


def _move(sources: set[ItemState], target: ItemState) -> Move:
    return Move(frozenset(sources), target)


S = ItemState
# Items that have not reached IMS's copy call can be cancelled; a running IMS job cannot.
CANCELLABLE = frozenset({S.ACCEPTED, S.VALIDATING, S.WAITING})

MOVES: dict[Event, Move] = {
    Event.START_VALIDATION: _move({S.ACCEPTED}, S.VALIDATING),
    Event.RESUME_VALIDATION: _move({S.VALIDATING}, S.VALIDATING),
    Event.VALIDATED: _move({S.VALIDATING}, S.WAITING),
    Event.REJECT: _move({S.VALIDATING}, S.REJECTED),
    Event.START_SUBMIT: _move({S.WAITING}, S.SUBMITTING),
    Event.HAND_BACK: _move({S.SUBMITTING}, S.WAITING),
    Event.COPY_STARTED: _move({S.SUBMITTING}, S.REPLICATING),
    Event.COPIED: _move({S.REPLICATING}, S.FINISHING),
    # A finishing item has its copy: it ends succeeded whatever its follow-ups did, never failed or cancelled.
    Event.SUCCEED: _move({S.REPLICATING, S.FINISHING}, S.SUCCEEDED),
    Event.FAIL: _move({S.VALIDATING, S.WAITING, S.SUBMITTING, S.REPLICATING}, S.FAILED),
    Event.CANCEL: _move(set(CANCELLABLE), S.CANCELLED),
    Event.RETRY: _move({S.FAILED}, S.ACCEPTED),
    Event.RESUME: _move({S.CANCELLED}, S.ACCEPTED),
}

# The event that ends an item in each terminal state a step can reach.
ENDING: dict[ItemState, Event] = {S.SUCCEEDED: Event.SUCCEED, S.REJECTED: Event.REJECT, S.FAILED: Event.FAIL}


def allowed(source: ItemState, target: ItemState) -> bool:
    """Whether some event moves an item from ``source`` to ``target``."""
    return any(source in m.sources and m.target is target for m in MOVES.values())
