"""Exactly once: the message activities already taken, per Teams conversation, so a redelivery is not
answered again.

Teams' connector waits 15 seconds for its 202, then delivers the same activity again (same
``conversation.id`` and activity ``id``); a client may resend one after a timeout of its own. The first
server to :meth:`SeenActivities.first` an activity answers it; every later delivery, to this server after a
restart or to another server sharing the database, is acknowledged and dropped. One row per activity:
``teams.sqlite3`` beside the conversation store (the server's side store), or one table in PostgreSQL
shared by every server when ``database_url`` is set. Taking it is one INSERT ... ON CONFLICT DO NOTHING,
so two servers racing on one activity get one winner.

An activity is taken when it is acknowledged, before its turn runs: a server killed mid-turn does not
answer the redelivery (Teams' retries come within a minute, while the turn still runs); a clean shutdown
finishes the turns it acknowledged (:meth:`TeamsAgent.stop`). Rows older than ``KEEP`` seconds go: the
connector redelivers within minutes, not days.

The PostgreSQL table has its own migration name space ("teams_activities"), as the links have theirs: a
name space's versions belong to the one module that writes its migrations.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kernel_app.interfaces.server.side_store import SideStore
from kernel_app.interfaces.server.teams.links import DB_NAME
from kernel_app.providers.postgres import Migration, migrate, open_pool

if TYPE_CHECKING:
    from psycopg import Connection

KEEP = 24 * 3600.0  # seconds an activity is remembered
PRUNE_EVERY = 500  # takes between two prunes of the old rows

NAMESPACE = "teams_activities"
MIGRATIONS = (
    Migration(
        1,
        "the Teams message activities already taken, so a redelivery is answered once",
        """
        CREATE TABLE teams_activities (
            teams_id     text NOT NULL,
            activity_id  text NOT NULL,
            taken_at     double precision NOT NULL,
            PRIMARY KEY (teams_id, activity_id)
        );
        CREATE INDEX teams_activities_by_time ON teams_activities (taken_at);
        """,
    ),
)

_TAKE_SQLITE = "INSERT INTO seen (teams_id, activity_id, taken_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
_TAKE_PG = (
    "INSERT INTO teams_activities (teams_id, activity_id, taken_at) VALUES (%s, %s, %s) "
    "ON CONFLICT (teams_id, activity_id) DO NOTHING"
)


class Seen(Protocol):
    """What the Teams agent uses of the taken activities, in SQLite or PostgreSQL."""

    def first(self, teams_id: str, activity_id: str) -> bool: ...

    def close(self) -> None: ...


class SeenActivities(SideStore):
    """The ``seen`` table of ``teams.sqlite3``, beside the links, plans and calls."""

    DB_NAME = DB_NAME
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS seen (teams_id TEXT NOT NULL, activity_id TEXT NOT NULL, "
        "taken_at REAL NOT NULL, PRIMARY KEY (teams_id, activity_id))"
    )

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self._takes = 0

    def first(self, teams_id: str, activity_id: str) -> bool:
        """Take the activity: True for the first delivery (answer it), False for every later one."""
        now = time.time()
        with self._lock:
            taken = self._conn.execute(_TAKE_SQLITE, (teams_id, activity_id, now)).rowcount == 1
            self._takes += 1
            if self._takes % PRUNE_EVERY == 1:
                self._conn.execute("DELETE FROM seen WHERE taken_at < ?", (now - KEEP,))
        return taken


def _migrate(conn: Connection[Any]) -> None:
    migrate(conn, NAMESPACE, MIGRATIONS)


class PgSeenActivities:
    """The taken activities in PostgreSQL: the same promise as :class:`SeenActivities`, across servers."""

    backend = "postgresql"

    def __init__(self, database_url: str) -> None:
        self._pool = open_pool(database_url, max_size=2, name="kernel-app-teams-activities", setup=_migrate)
        self._takes = 0

    def first(self, teams_id: str, activity_id: str) -> bool:
        now = time.time()
        with self._pool.connection() as conn, conn.transaction():
            taken = conn.execute(_TAKE_PG, (teams_id, activity_id, now)).rowcount == 1
            self._takes += 1
            if self._takes % PRUNE_EVERY == 1:
                conn.execute("DELETE FROM teams_activities WHERE taken_at < %s", (now - KEEP,))
        return taken

    def close(self) -> None:
        self._pool.close()


def open_seen(store_path: Path | str, database_url: str | None = None) -> Seen:
    """The taken activities: in PostgreSQL when ``database_url`` is set, else ``teams.sqlite3`` beside the store."""
    if database_url:
        return PgSeenActivities(database_url)
    return SeenActivities.beside(store_path)
