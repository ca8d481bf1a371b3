"""An adapter's own SQLite file beside the conversation store (Teams' ``teams.sqlite3``, chat-copilot's
``copilot.sqlite3``), opened one way for all of them.

WAL and ``synchronous=FULL`` as in the conversation store, so what an adapter keeps about a conversation
survives a restart (and a kill) like the messages it points at. One connection per store, shared by the
event loop and worker threads under a lock (``check_same_thread=False``).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import ClassVar, Self

MEMORY = ":memory:"


def connect(path: str) -> sqlite3.Connection:
    """Open ``path`` (its folder made if missing) in autocommit mode, durable as the conversation store."""
    if path != MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    if path != MEMORY:  # an in-memory database has no WAL
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class SideStore:
    """A subclass names its file (``DB_NAME``) and its tables (``SCHEMA``, run at open); several may share a file."""

    DB_NAME: ClassVar[str]
    SCHEMA: ClassVar[str]

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(self.SCHEMA)

    @classmethod
    def beside(cls, store_path: Path | str) -> Self:
        """Next to the conversation store (in memory when the store is)."""
        if str(store_path) == MEMORY:
            return cls(MEMORY)
        return cls(Path(store_path).parent / cls.DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
