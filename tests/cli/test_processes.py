"""``free_port``: ports for child services that an outgoing connection cannot take before the child binds them."""

from __future__ import annotations

import socket

from cli import processes
from cli.processes import free_port


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
