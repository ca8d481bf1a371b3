"""Which engine conversation a Teams conversation is: ``teams.sqlite3`` beside the conversation store.

One row per Teams ``conversation.id``; ``/reset`` points it at a new engine conversation (the old one
stays in the store). Opened as every adapter's side store (:mod:`kernel_app.interfaces.server.side_store`), so the
link survives a restart (and a kill) like the messages it points at.
"""

from __future__ import annotations

import time

from kernel_app.interfaces.server.side_store import SideStore

DB_NAME = "teams.sqlite3"


class TeamsLinks(SideStore):
    """The ``links`` table of ``teams.sqlite3``."""

    DB_NAME = DB_NAME
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS links (teams_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, "
        "updated_at REAL NOT NULL)"
    )

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
