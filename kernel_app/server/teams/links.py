"""Which engine conversation a Teams conversation is: ``teams.sqlite3`` beside the conversation store.

One row per Teams ``conversation.id``; ``/reset`` points it at a new engine conversation (the old one
stays in the store). WAL and ``synchronous=FULL`` as in the conversation store, so the link survives a
restart (and a kill) like the messages it points at.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

DB_NAME = "teams.sqlite3"


class TeamsLinks:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS links (teams_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, "
            "updated_at REAL NOT NULL)"
        )

    @classmethod
    def beside(cls, store_path: Path | str) -> TeamsLinks:
        """Next to the conversation store (in memory when the store is)."""
        if str(store_path) == ":memory:":
            return cls(":memory:")
        return cls(Path(store_path).parent / DB_NAME)

    def get(self, teams_id: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT conversation_id FROM links WHERE teams_id = ?", (teams_id,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, teams_id: str, conversation_id: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO links (teams_id, conversation_id, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (teams_id) DO UPDATE SET conversation_id = excluded.conversation_id, "
                "updated_at = excluded.updated_at",
                (teams_id, conversation_id, time.time()),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
