"""Count the round trips a client makes to PostgreSQL: a proxy on a Unix socket that reads what clients send.

A round trip in PostgreSQL's protocol ends with a message that asks the server to answer: ``Sync`` (the
extended protocol: psycopg's parameterized statements, prepared or not) or ``Query`` (the simple protocol:
BEGIN, COMMIT, statements without parameters). The proxy counts those in the stream each client sends,
before passing it on, so a count read after an answer came back includes the request that caused it.
Counting on the wire, not in psycopg, catches what a Python hook would miss (the BEGIN and COMMIT psycopg
sends by itself, a pool's checks, a pipeline's statements sent at once)::

    with WireCounter(postgres_url) as wire:
        store = PgConversationStore(wire.url, ...)
        wire.reset()
        ...  # the work to count
        assert wire.round_trips == 2

``wire.statements`` lists the SQL of each Parse and Query since the last reset (a prepared statement's
later executions send no SQL: only its first Parse is listed).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any

ANSWER_NOW = {b"S", b"Q"}  # Sync, Query: the server answers, the client waits


class WireCounter:
    """A counting proxy in front of the PostgreSQL server of ``url`` (a ``postgresql://`` URL whose host is
    a Unix socket folder, as tests/support/postgres.py gives); ``url`` is the proxy's."""

    def __init__(self, url: str) -> None:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
        port = str(parts.get("port") or 5432)
        self._server = str(Path(str(parts["host"])) / f".s.PGSQL.{port}")
        self._folder = tempfile.mkdtemp(prefix="pg-wire-")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(Path(self._folder) / f".s.PGSQL.{port}"))
        self._listener.listen(64)
        split = urlsplit(url)  # the same URL with the proxy's folder as its host (a socket folder)
        query = [(key, value) for key, value in parse_qsl(split.query) if key != "host"]
        self.url = urlunsplit(split._replace(query=urlencode([*query, ("host", self._folder)])))
        self._lock = threading.Lock()
        self.round_trips = 0
        self.statements: list[str] = []
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="pg-wire-accept").start()

    def reset(self) -> None:
        with self._lock:
            self.round_trips = 0
            self.statements = []

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self._server)
            self._sockets += [client, server]
            threading.Thread(target=self._client_to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=_pump, args=(server, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        buffer = b""
        started = False  # the startup message has no type byte
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                buffer += data
                while True:
                    head = 4 if not started else 5
                    if len(buffer) < head:
                        break
                    length = struct.unpack("!I", buffer[head - 4 : head])[0]
                    end = head - 4 + length
                    if len(buffer) < end:
                        break
                    if started:
                        self._count(buffer[:1], buffer[5:end])
                    started = True
                    buffer = buffer[end:]
                server.sendall(data)  # after counting: the answer cannot come before the count
        _close(client, server)

    def _count(self, kind: bytes, body: bytes) -> None:
        with self._lock:
            if kind in ANSWER_NOW:
                self.round_trips += 1
            if kind == b"Q":
                self.statements.append(body.rstrip(b"\0").decode(errors="replace"))
            elif kind == b"P":  # Parse: statement name, NUL, the SQL, NUL, parameter types
                self.statements.append(body.split(b"\0", 2)[1].decode(errors="replace"))

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> WireCounter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    _close(source, target)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
