"""Time-limit safety (issue 25): Celery's soft time limit raises ``SoftTimeLimitExceeded`` from a signal handler,
wherever the main thread is. Raised at each point of a submit's lock handling in turn (taking the lease, the step,
releasing it; the lock free, or held by another delivery), it never leaves the lock held nor its lease renewed, nor
takes another holder's lock (against a real Redis server).

CPython runs a signal handler only where its eval loop looks for one: at a function's start, at a backward jump, and
after a call returns (or inside a call that waits, which looks the same from here). Those are the points tried; not
the others, such as between a ``with`` body's last instruction and the call of ``__exit__``, where no signal lands."""

from __future__ import annotations

import contextlib
import dis
import importlib
import sys
from collections.abc import Iterator
from types import CodeType, FrameType, SimpleNamespace

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from cli.processes import wait_until
from worker.data.lease import _RENEWALS, Lease, _Renewals

submit_step = importlib.import_module("worker.steps.submit")  # the package names its function so

LEASE = 0.3  # seconds; looked after every 0.1 s


def _signal_points(code: CodeType) -> set[int]:
    """Offsets of the instructions before which CPython may run a signal handler."""
    found, after_call = set(), True
    for instruction in dis.get_instructions(code):
        if after_call or instruction.opname == "JUMP_BACKWARD":
            found.add(instruction.offset)
        after_call = instruction.opname.startswith("CALL") or instruction.opname == "RESUME"
    return found


@contextlib.contextmanager
def time_limit_at(target: tuple[CodeType, int], codes: set[CodeType]) -> Iterator[list[bool]]:
    """Raise ``SoftTimeLimitExceeded`` the first time this thread gets to ``target`` (code, offset), as the soft
    time limit's handler would there; yields whether it did. ``codes``: every code the target may be in."""
    fired: list[bool] = []

    def each_opcode(frame: FrameType, event: str, _arg: object) -> object:
        if event == "opcode" and not fired and (frame.f_code, frame.f_lasti) == target:
            fired.append(True)
            raise SoftTimeLimitExceeded(target)
        return each_opcode

    def each_call(frame: FrameType, _event: str, _arg: object) -> object:
        if frame.f_code not in codes:
            return None
        frame.f_trace_opcodes = True
        return each_opcode

    previous = sys.gettrace()
    sys.settrace(each_call)
    try:
        yield fired
    finally:
        sys.settrace(previous)


def _step(ctx, item_id: str) -> list:
    """The submit step while the lock is held: it finds the lock its own."""
    ctx.held.append(ctx.data.control.submit_lock_left(item_id) > 0)
    return []


@pytest.mark.parametrize("another_holds_it", [False, True])
def test_a_time_limit_anywhere_in_a_submit_leaves_no_lock_and_no_renewal(
    redis_server, monkeypatch, another_holds_it: bool
) -> None:
    data, client = redis_server.data(), redis_server.client()
    leases: list[Lease] = []
    take = data.control.submit_lock

    def submit_lock(item_id: str, lease: float) -> Lease:  # each lease kept, to look at afterwards
        leases.append(take(item_id, lease))
        return leases[-1]

    monkeypatch.setattr(data.control, "submit_lock", submit_lock)
    monkeypatch.setattr(submit_step, "_submit", _step)
    monkeypatch.setattr(submit_step, "_after_lock", lambda ctx, item_id: [])
    ctx = SimpleNamespace(data=data, settings=SimpleNamespace(submit_lease_seconds=LEASE), held=[])
    steps = (submit_step.submit, Lease.__enter__, Lease.__exit__, Lease._release, _Renewals.add, _step)
    codes = {f.__code__ for f in steps}
    targets = sorted(((code, at) for code in codes for at in _signal_points(code)), key=lambda t: t[0].co_name)
    tried, keys = set(), []
    for k, target in enumerate([*targets, None]):  # None: no time limit, the submit runs to its end
        keys.append(data.keys.submit_lock(f"item-{k}"))
        if another_holds_it:
            client.set(keys[-1], "another-holder", px=60_000)
        if target and target[0] is _Renewals.add.__code__:
            monkeypatch.setattr(_RENEWALS, "_pid", 0)  # its thread is started again, so those points are tried too
        with time_limit_at(target, codes) as fired, contextlib.suppress(SoftTimeLimitExceeded):
            submit_step.submit(ctx, f"item-{k}")
        tried |= {target[0].co_name} if fired else set()
    holding = set() if another_holds_it else {"_step", "_release"}  # what runs only with the lock taken
    assert tried == {"submit", "__enter__", "__exit__", "add"} | holding, tried
    assert ctx.held == [] if another_holds_it else ctx.held and all(ctx.held)  # the step ran with the lock held

    def let_go() -> bool:  # by its holder, or by the renewals in its place; and no longer looked after
        if any(_RENEWALS.looks_after(lease) for lease in leases):
            return False
        return client.mget(keys) == (["another-holder"] * len(keys) if another_holds_it else [None] * len(keys))

    wait_until(let_go, timeout=2 * LEASE + 1, what="every lock released (another's kept) and no lease renewed")
