"""``free_port``: ports for child services that an outgoing connection cannot take before the child binds them;
``wait_until``: which errors of a check mean "not yet"."""

from __future__ import annotations

import socket

import httpx
import pytest
import redis

from cli import processes
from cli.processes import free_port, wait_until
from worker.data import NotReplicated


def test_a_free_port_lies_below_the_ephemeral_range_where_outgoing_connections_draw_theirs():
    low, _ = processes._ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert all(processes._LISTEN_FLOOR <= port < low for port in ports)
    assert len(set(ports)) == len(ports)  # never handed out twice, even before anyone binds it


def test_a_port_someone_listens_on_is_skipped(monkeypatch):
    with socket.socket() as taken, socket.socket() as spare:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        spare_port = free_port()
        monkeypatch.setattr(processes, "_handed_out", set())
        draws = iter([taken.getsockname()[1], spare_port])
        monkeypatch.setattr(processes.random, "choice", lambda _: next(draws))
        assert free_port() == spare_port
        spare.bind(("127.0.0.1", spare_port))  # and it was really free


def test_a_port_is_bindable_by_the_child_it_is_handed_to():
    port = free_port()
    with socket.socket() as child:
        child.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        child.bind(("127.0.0.1", port))
        child.listen()
        assert child.getsockname()[1] == port


# ``wait_until``: what a check raises either means "not yet" (the service cannot answer for now) or is the check's own
# fault, which ends the wait at once instead of reading as a timeout (issue 25).


def test_a_check_that_raises_anything_else_ends_the_wait_at_once():
    calls = []

    def broken() -> bool:
        calls.append(1)
        return {}["missing"]

    with pytest.raises(KeyError):
        wait_until(broken, 30, "a check with a bug")
    assert len(calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        httpx.ConnectError("refused"),
        redis.ConnectionError("refused"),
        redis.BusyLoadingError("LOADING"),
        redis.ReadOnlyError("READONLY"),
        NotReplicated(0, 1),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_service_that_cannot_answer_yet_is_asked_again(error):
    answers = iter([error, error, True])

    def check() -> bool:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait_until(check, 30, "the service", interval=0)
    assert next(answers, None) is None  # asked until it answered


def test_a_service_that_never_answers_times_out_naming_what_was_awaited():
    url = f"http://127.0.0.1:{free_port()}/"  # nobody listens there: every request is refused
    with pytest.raises(TimeoutError, match="the API on a closed port"):
        wait_until(lambda: httpx.get(url, timeout=1).is_success, 0.2, "the API on a closed port")
