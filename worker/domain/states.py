"""The life of a replication item: its states and the transitions allowed between them."""

from __future__ import annotations

from enum import Enum


class ItemState(str, Enum):
    ACCEPTED = "accepted"  # stored by the API, not yet looked at by a worker
    VALIDATING = "validating"  # a worker is checking the seed's rules against IMS and KMS
    WAITING = "waiting"  # valid, queued for one of the account's replication slots
    SUBMITTING = "submitting"  # holds a slot; the copy call is being made (or its result adopted)
    REPLICATING = "replicating"  # IMS accepted the copy; its job is being polled
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"  # validation said no; IMS's copy call was never made
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({ItemState.SUCCEEDED, ItemState.REJECTED, ItemState.FAILED, ItemState.CANCELLED})
ACTIVE = frozenset(ItemState) - TERMINAL

# Which state may follow which. A step re-entering its own state (a redelivered message) is allowed, so that each
# step is idempotent; anything else is refused by the store atomically.
TRANSITIONS: dict[ItemState, frozenset[ItemState]] = {
    ItemState.ACCEPTED: frozenset({ItemState.VALIDATING, ItemState.CANCELLED}),
    ItemState.VALIDATING: frozenset(
        {ItemState.VALIDATING, ItemState.WAITING, ItemState.REJECTED, ItemState.FAILED, ItemState.CANCELLED}
    ),
    ItemState.WAITING: frozenset({ItemState.SUBMITTING, ItemState.CANCELLED, ItemState.FAILED}),
    ItemState.SUBMITTING: frozenset({ItemState.SUBMITTING, ItemState.REPLICATING, ItemState.FAILED}),
    ItemState.REPLICATING: frozenset({ItemState.SUCCEEDED, ItemState.FAILED}),
    ItemState.SUCCEEDED: frozenset(),
    ItemState.REJECTED: frozenset({ItemState.ACCEPTED}),  # retry as a new attempt
    ItemState.FAILED: frozenset({ItemState.ACCEPTED}),  # retry as a new attempt
    ItemState.CANCELLED: frozenset(),
}

# Items that have not yet reached IMS's copy call can be cancelled; a running IMS job cannot.
CANCELLABLE = frozenset({ItemState.ACCEPTED, ItemState.VALIDATING, ItemState.WAITING})
RETRYABLE = frozenset({ItemState.FAILED})


def sources_of(target: ItemState) -> frozenset[ItemState]:
    """Every state from which ``target`` may be entered."""
    return frozenset(s for s, nxt in TRANSITIONS.items() if target in nxt)
