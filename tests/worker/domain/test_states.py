"""The item state machine: one table of moves, read by everything that moves an item."""

from __future__ import annotations

from worker.domain.states import CANCELLABLE, ENDING, MOVES, TERMINAL, Event, ItemState, allowed


def test_the_happy_path_is_allowed_step_by_step() -> None:
    path = ["accepted", "validating", "waiting", "submitting", "replicating", "succeeded"]
    for a, b in zip(path, path[1:], strict=False):
        assert allowed(ItemState(a), ItemState(b))


def test_terminal_states_only_lead_back_to_accepted_as_a_retry_of_a_failure() -> None:
    assert {ItemState.SUCCEEDED, ItemState.REJECTED, ItemState.FAILED, ItemState.CANCELLED} == TERMINAL
    leaving = {(s, m.target) for m in MOVES.values() for s in m.sources if s in TERMINAL}
    assert leaving == {(ItemState.FAILED, ItemState.ACCEPTED)}


def test_only_items_before_the_copy_call_can_be_cancelled() -> None:
    assert {ItemState.ACCEPTED, ItemState.VALIDATING, ItemState.WAITING} == CANCELLABLE
    assert MOVES[Event.CANCEL].sources == CANCELLABLE


def test_rejected_only_from_validation_and_success_only_from_replicating() -> None:
    assert MOVES[Event.REJECT].sources == {ItemState.VALIDATING}
    assert MOVES[Event.SUCCEED].sources == {ItemState.REPLICATING}
    assert not allowed(ItemState.ACCEPTED, ItemState.FAILED)


def test_every_terminal_state_a_step_ends_in_has_its_event() -> None:
    for state, event in ENDING.items():
        assert MOVES[event].target is state and state.terminal
