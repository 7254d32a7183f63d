"""store/liveness.py's test of an idle connection: a socket with something to read, or closed by its peer."""

from __future__ import annotations

import socket

from errands.store.liveness import server_spoke


def test_a_quiet_socket_is_live_one_with_bytes_or_a_close_waiting_is_not() -> None:
    ours, server = socket.socketpair()
    with ours, server:
        assert not server_spoke(ours.fileno())
        server.sendall(b"E")  # e.g. PostgreSQL's FATAL 57P01 before it closes
        assert server_spoke(ours.fileno())
        ours.recv(1)
        assert not server_spoke(ours.fileno())
        server.close()  # the close alone: end of file to read
        assert server_spoke(ours.fileno())
