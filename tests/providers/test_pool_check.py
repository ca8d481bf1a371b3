"""The pool's check before it hands out a connection (``kernel_app.providers.postgres.pool``): a round trip
only when the connection's socket has something to read, which an idle connection has only once its server
process ended. (That a connection killed while idle is replaced runs against a real server in
tests/interfaces/server/test_database_outage.py.)"""

from __future__ import annotations

import socket

from kernel_app.providers.postgres.pool import _readable


def test_a_socket_is_readable_only_once_its_peer_sent_something_or_hung_up() -> None:
    ours, theirs = socket.socketpair()
    try:
        assert not _readable(ours.fileno())  # idle: no round trip needed
        theirs.sendall(b"E")  # the server's last words (an error message) ...
        assert _readable(ours.fileno())
        ours.recv(1)
        theirs.close()  # ... or just the end of the connection
        assert _readable(ours.fileno())
    finally:
        ours.close()
