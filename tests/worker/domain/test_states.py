"""The item state machine: one table of moves, read by everything that moves an item."""

from __future__ import annotations

from worker.domain.states import CANCELLABLE, ENDING, MOVES, TERMINAL, Event, ItemState, allowed


def test_the_happy_path_is_allowed_step_by_step() -> None:
    path = ["accepted", "validating", "waiting", "submitting", "replicating", "succeeded"]
    for a, b in zip(path, path[1:], strict=False):
        assert allowed(ItemState(a), ItemState(b))


def test_terminal_states_only_lead_back_to_accepted_as_a_retry_of_a_failure_or_a_cancel() -> None:
    assert {ItemState.SUCCEEDED, ItemState.REJECTED, ItemState.FAILED, ItemState.CANCELLED} == TERMINAL
    leaving = {(s, m.target) for m in MOVES.values() for s in m.sources if s in TERMINAL}
    assert leaving == {(ItemState.FAILED, ItemState.ACCEPTED), (ItemState.CANCELLED, ItemState.ACCEPTED)}


def test_only_items_before_the_copy_call_can_be_cancelled() -> None:
    assert {ItemState.ACCEPTED, ItemState.VALIDATING, ItemState.WAITING} == CANCELLABLE
    assert MOVES[Event.CANCEL].sources == CANCELLABLE


def test_rejected_only_from_validation_and_success_only_once_the_copy_is_active() -> None:
    assert MOVES[Event.REJECT].sources == {ItemState.VALIDATING}
    assert MOVES[Event.SUCCEED].sources == {ItemState.REPLICATING, ItemState.FINISHING}
    assert not allowed(ItemState.ACCEPTED, ItemState.FAILED)


def test_a_copy_with_follow_ups_finishes_and_then_can_only_succeed() -> None:
    """The copy exists once an item is finishing: nothing may fail, cancel or retry it, only succeed it."""
    assert allowed(ItemState.REPLICATING, ItemState.FINISHING)
    assert MOVES[Event.COPIED].sources == {ItemState.REPLICATING}
    leaving = {m.target for m in MOVES.values() if ItemState.FINISHING in m.sources}
    assert leaving == {ItemState.SUCCEEDED}
    assert not ItemState.FINISHING.terminal


def test_every_terminal_state_a_step_ends_in_has_its_event() -> None:
    for state, event in ENDING.items():
        assert MOVES[event].target is state and state.terminal
