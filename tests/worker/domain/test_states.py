"""The item state machine."""

from __future__ import annotations

from worker.domain.states import CANCELLABLE, TERMINAL, TRANSITIONS, ItemState, sources_of


def test_the_happy_path_is_allowed_step_by_step() -> None:
    path = ["accepted", "validating", "waiting", "submitting", "replicating", "succeeded"]
    for a, b in zip(path, path[1:], strict=False):
        assert ItemState(b) in TRANSITIONS[ItemState(a)]


def test_terminal_states_only_lead_back_to_accepted_as_a_retry() -> None:
    assert {ItemState.SUCCEEDED, ItemState.REJECTED, ItemState.FAILED, ItemState.CANCELLED} == TERMINAL
    for state in TERMINAL:
        assert state.terminal and TRANSITIONS[state] <= {ItemState.ACCEPTED}


def test_only_items_before_the_copy_call_can_be_cancelled() -> None:
    assert {ItemState.ACCEPTED, ItemState.VALIDATING, ItemState.WAITING} == CANCELLABLE
    assert sources_of(ItemState.CANCELLED) == CANCELLABLE


def test_rejected_only_from_validation_and_success_only_from_replicating() -> None:
    assert sources_of(ItemState.REJECTED) == {ItemState.VALIDATING}
    assert sources_of(ItemState.SUCCEEDED) == {ItemState.REPLICATING}
    assert ItemState.FAILED not in TRANSITIONS[ItemState.ACCEPTED]
