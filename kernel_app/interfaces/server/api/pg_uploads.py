"""PgUploads: the bytes of documents uploaded through ``POST /v1/memory/{collection}/documents``, kept in
PostgreSQL with ``database_url`` (issue 19), so every server serves their download and can ingest them again.

Keyed by (collection, name) as the upload folder is (``uploads/COLLECTION/NAME``, both names made safe):
uploading a file of the same name again, through any server, replaces its bytes. The table comes from the
memory store's migrations (``memories.pg_store``; an older program made it in an "uploads" name space of
its own), and dropping the collection deletes its rows. The receiving server's ``uploads/`` copy is only
what ingest read: losing it loses nothing.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from kernel_app.providers.postgres import describe_url, migrate, open_pool, transaction

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool


def _migrate(conn: Connection[Any]) -> None:
    # The table belongs to the memory store's migrations (its drop deletes a collection's uploads).
    from memories.pg_store import MIGRATIONS, NAMESPACE

    migrate(conn, NAMESPACE, MIGRATIONS)


class PgUploads:
    """``PgUploads(database_url)``; thread-safe (a small pool), every method one transaction."""

    def __init__(self, database_url: str, *, max_connections: int = 2) -> None:
        self.database_url = database_url
        self._pool: ConnectionPool = open_pool(
            database_url, max_size=max_connections, name="kernel-app-uploads", setup=_migrate
        )

    def __repr__(self) -> str:
        return f"PgUploads({describe_url(self.database_url)!r})"

    def _transaction(self) -> AbstractContextManager[Connection[Any]]:
        return transaction(self._pool)

    def close(self) -> None:
        self._pool.close()

    def keep(self, collection: str, name: str, content: bytes) -> None:
        """Insert or replace the bytes of ``name`` in ``collection`` (names as the upload folder has them)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO memory_uploads (collection, name, size, content, uploaded_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (collection, name) DO UPDATE SET "
                "size = excluded.size, content = excluded.content, uploaded_at = excluded.uploaded_at",
                (collection, name, len(content), content, time.time()),
            )

    def content(self, collection: str, name: str) -> bytes | None:
        """The bytes kept for ``name``; None when none were uploaded under that name."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT content FROM memory_uploads WHERE collection = %s AND name = %s", (collection, name)
            ).fetchone()
        return None if row is None else bytes(row[0])
