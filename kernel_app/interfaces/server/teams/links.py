"""Which engine conversation a Teams conversation is: ``teams.sqlite3`` beside the conversation store,
or one table in PostgreSQL shared by every server when ``database_url`` is set (issue 19).

One row per Teams ``conversation.id``; ``/reset`` points it at a new engine conversation (the old one
stays in the store). Opened as every adapter's side store (:mod:`kernel_app.interfaces.server.side_store`), so the
link survives a restart (and a kill) like the messages it points at.

A new Teams chat whose first messages land on two servers at once must become ONE conversation: each
server proposes an id with :meth:`TeamsLinks.claim` (an INSERT that does nothing when a row is there,
then a SELECT), and both create the conversation the row names (one of them finds it made already).

The PostgreSQL table has its own migration name space ("teams_links"), not a table in "conversations":
the conversation store belongs to the engine layer, which knows nothing of Teams, and a name space's
versions belong to the one module that writes its migrations.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kernel_app.interfaces.server.side_store import SideStore
from kernel_app.providers.postgres import Migration, migrate, open_pool

if TYPE_CHECKING:
    from psycopg import Connection

DB_NAME = "teams.sqlite3"

NAMESPACE = "teams_links"
MIGRATIONS = (
    Migration(
        1,
        "which engine conversation each Teams conversation is",
        """
        CREATE TABLE teams_links (
            teams_id         text PRIMARY KEY,
            conversation_id  text NOT NULL,
            updated_at       double precision NOT NULL
        );
        """,
    ),
)

# Insert ``proposed`` unless a row is there: a link, once made, is only changed by ``set`` (/reset). Spelled out
# per backend (placeholders differ) so that each is a literal, as psycopg wants its SQL.
_CLAIM_SQLITE = (
    "INSERT INTO links (teams_id, conversation_id, updated_at) VALUES (?, ?, ?) ON CONFLICT (teams_id) DO NOTHING"
)
_CLAIM_PG = (
    "INSERT INTO teams_links (teams_id, conversation_id, updated_at) VALUES (%s, %s, %s) "
    "ON CONFLICT (teams_id) DO NOTHING"
)
_SET_SQLITE = (
    "INSERT INTO links (teams_id, conversation_id, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (teams_id) DO UPDATE SET conversation_id = excluded.conversation_id, "
    "updated_at = excluded.updated_at"
)
_SET_PG = (
    "INSERT INTO teams_links (teams_id, conversation_id, updated_at) VALUES (%s, %s, %s) "
    "ON CONFLICT (teams_id) DO UPDATE SET conversation_id = excluded.conversation_id, "
    "updated_at = excluded.updated_at"
)


class Links(Protocol):
    """What the Teams agent uses of its links, in SQLite or PostgreSQL."""

    def get(self, teams_id: str) -> str | None: ...

    def claim(self, teams_id: str, proposed: str) -> str: ...

    def set(self, teams_id: str, conversation_id: str) -> None: ...

    def close(self) -> None: ...


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

    def claim(self, teams_id: str, proposed: str) -> str:
        """The conversation ``teams_id`` is: ``proposed`` if no server linked it first, else the one linked;
        two servers on one file get the same answer."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # the INSERT and the SELECT see one state of the file
            try:
                self._conn.execute(_CLAIM_SQLITE, (teams_id, proposed, time.time()))
                row = self._conn.execute("SELECT conversation_id FROM links WHERE teams_id = ?", (teams_id,)).fetchone()
            finally:
                self._conn.execute("COMMIT")
        assert row is not None  # the INSERT made it or found it
        return str(row[0])

    def set(self, teams_id: str, conversation_id: str) -> None:
        """Point ``teams_id`` at ``conversation_id`` whatever it was (``/reset``, ``/resume``)."""
        with self._lock:
            self._conn.execute(_SET_SQLITE, (teams_id, conversation_id, time.time()))


def _migrate(conn: Connection[Any]) -> None:
    migrate(conn, NAMESPACE, MIGRATIONS)


class PgTeamsLinks:
    """The links in PostgreSQL: the same methods and promises as :class:`TeamsLinks`, for servers that
    share one database."""

    backend = "postgresql"

    def __init__(self, database_url: str) -> None:
        self._pool = open_pool(database_url, max_size=2, name="kernel-app-teams-links", setup=_migrate)

    def get(self, teams_id: str) -> str | None:
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute("SELECT conversation_id FROM teams_links WHERE teams_id = %s", (teams_id,)).fetchone()
        return None if row is None else str(row[0])

    def claim(self, teams_id: str, proposed: str) -> str:
        """As :meth:`TeamsLinks.claim`. Two statements: under READ COMMITTED the SELECT sees the row of
        whichever server's INSERT won (the losing INSERT waits for it to commit, then does nothing)."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(_CLAIM_PG, (teams_id, proposed, time.time()))
            row = conn.execute("SELECT conversation_id FROM teams_links WHERE teams_id = %s", (teams_id,)).fetchone()
        assert row is not None  # the INSERT made it or found it
        return str(row[0])

    def set(self, teams_id: str, conversation_id: str) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(_SET_PG, (teams_id, conversation_id, time.time()))

    def close(self) -> None:
        self._pool.close()


def open_links(store_path: Path | str, database_url: str | None = None) -> Links:
    """The links: in PostgreSQL when ``database_url`` is set, else ``teams.sqlite3`` beside the store."""
    if database_url:
        return PgTeamsLinks(database_url)
    return TeamsLinks.beside(store_path)
