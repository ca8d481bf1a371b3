"""PgCopilotRecords: chat-copilot's chats, participants, messages and documents on PostgreSQL (issue 19).

The same methods and promises as :class:`~kernel_app.interfaces.server.chat_copilot.records.CopilotRecords`,
for servers that share one database: a chat created through one instance is listed, shown and answered
by any other. Tables come from the "copilot" migrations (their own name space); every name starts with
``copilot_`` so they sit beside the conversation store's tables in the same database.

An uploaded document's bytes are kept here too (``copilot_documents.content``, migration 2), so any
instance serves its download; answering needs only its chunks, which the memory store keeps in
pgvector. The receiving instance's ``uploads/`` copy is only what ingest read: losing it loses nothing.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from kernel_app.interfaces.server.chat_copilot.records import ChatRecord, DocumentRecord, ViewMessage
from kernel_app.providers.postgres import Migration, describe_url, migrate, open_pool, transaction

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

NAMESPACE = "copilot"
MIGRATIONS = (
    Migration(
        1,
        "chat-copilot's chats, participants, messages and documents",
        """
        CREATE TABLE copilot_chats (
            id                 text PRIMARY KEY,
            created_at         double precision NOT NULL,
            system_description text NOT NULL DEFAULT '',
            memory_balance     double precision NOT NULL DEFAULT 0.5
        );
        CREATE TABLE copilot_participants (
            chat_id text NOT NULL,
            user_id text NOT NULL,
            PRIMARY KEY (chat_id, user_id)
        );
        CREATE TABLE copilot_messages (
            id          text PRIMARY KEY,
            seq         bigserial,                   -- ties in created_at keep the order they were written
            chat_id     text NOT NULL,
            created_at  double precision NOT NULL,
            author_role integer NOT NULL,
            user_id     text NOT NULL,
            user_name   text NOT NULL,
            type        integer NOT NULL DEFAULT 0,
            content     text NOT NULL DEFAULT '',
            citations   text,                        -- JSON as written (text keeps its key order)
            token_usage text
        );
        CREATE INDEX copilot_messages_by_chat ON copilot_messages (chat_id, created_at, seq);
        CREATE TABLE copilot_covered (
            chat_id text NOT NULL,
            seq     integer NOT NULL,
            PRIMARY KEY (chat_id, seq)
        );
        CREATE TABLE copilot_documents (
            id         text PRIMARY KEY,
            seq        bigserial,
            chat_id    text NOT NULL,
            name       text NOT NULL,
            size       bigint NOT NULL,
            chunks     integer NOT NULL,
            shared_by  text NOT NULL,
            created_at double precision NOT NULL
        );
        CREATE INDEX copilot_documents_by_chat ON copilot_documents (chat_id, created_at, seq);
        """,
    ),
    Migration(
        2,
        "an uploaded document's bytes, so every instance can serve them",
        # NULL for a document uploaded before: its bytes are only on the disk of the instance that took it.
        # bytea, not a large object: deleting the row deletes the bytes, and uploads are a few MB at most.
        "ALTER TABLE copilot_documents ADD COLUMN content bytea",
    ),
)
_COLUMNS = "id, chat_id, created_at, author_role, user_id, user_name, type, content, citations, token_usage"


def _migrate(conn: Connection[Any]) -> None:
    migrate(conn, NAMESPACE, MIGRATIONS)


class PgCopilotRecords:
    """``PgCopilotRecords(database_url)``; thread-safe (a small pool), every method one transaction."""

    backend = "postgresql"

    def __init__(self, database_url: str, *, max_connections: int = 4) -> None:
        self.database_url = database_url
        self._pool: ConnectionPool = open_pool(
            database_url, max_size=max_connections, name="kernel-app-copilot", setup=_migrate
        )

    def __repr__(self) -> str:
        return f"PgCopilotRecords({describe_url(self.database_url)!r})"

    def _transaction(self) -> AbstractContextManager[Connection[Any]]:
        return transaction(self._pool)

    def close(self) -> None:
        self._pool.close()

    # region chats

    def add_chat(self, chat_id: str, *, system_description: str = "", memory_balance: float = 0.5) -> ChatRecord:
        import time

        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO copilot_chats (id, created_at, system_description, memory_balance) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (chat_id, time.time(), system_description, memory_balance),
            )
        found = self.chat(chat_id)
        assert found is not None
        return found

    def chat(self, chat_id: str) -> ChatRecord | None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id, created_at, system_description, memory_balance FROM copilot_chats WHERE id = %s",
                (chat_id,),
            ).fetchone()
        return ChatRecord(row[0], float(row[1]), row[2], float(row[3])) if row else None

    def chat_ids(self) -> list[str]:
        with self._transaction() as conn:
            return [row[0] for row in conn.execute("SELECT id FROM copilot_chats ORDER BY created_at").fetchall()]

    def update_chat(
        self, chat_id: str, *, system_description: str | None = None, memory_balance: float | None = None
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE copilot_chats SET system_description = COALESCE(%s, system_description), "
                "memory_balance = COALESCE(%s, memory_balance) WHERE id = %s",
                (system_description, memory_balance, chat_id),
            )

    def delete_chat(self, chat_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM copilot_participants WHERE chat_id = %s", (chat_id,))
            conn.execute("DELETE FROM copilot_messages WHERE chat_id = %s", (chat_id,))
            conn.execute("DELETE FROM copilot_covered WHERE chat_id = %s", (chat_id,))
            conn.execute("DELETE FROM copilot_documents WHERE chat_id = %s", (chat_id,))
            conn.execute("DELETE FROM copilot_chats WHERE id = %s", (chat_id,))

    # endregion

    # region participants

    def join(self, chat_id: str, user_id: str) -> bool:
        """True when the user was not a participant yet (on any instance: one INSERT decides)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO copilot_participants (chat_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (chat_id, user_id),
            )
            return cursor.rowcount == 1

    def participants(self, chat_id: str) -> list[str]:
        with self._transaction() as conn:
            rows = conn.execute("SELECT user_id FROM copilot_participants WHERE chat_id = %s", (chat_id,)).fetchall()
        return [row[0] for row in rows]

    # endregion

    # region messages

    def save(self, message: ViewMessage) -> ViewMessage:
        """Insert or replace (a streamed reply is saved when it is final)."""
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO copilot_messages ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET chat_id = excluded.chat_id, created_at = excluded.created_at, "
                "author_role = excluded.author_role, user_id = excluded.user_id, user_name = excluded.user_name, "
                "type = excluded.type, content = excluded.content, citations = excluded.citations, "
                "token_usage = excluded.token_usage",
                (
                    message.id,
                    message.chat_id,
                    message.created_at,
                    message.author_role,
                    message.user_id,
                    message.user_name,
                    message.type,
                    message.content,
                    None if message.citations is None else json.dumps(message.citations),
                    None if message.token_usage is None else json.dumps(message.token_usage),
                ),
            )
        return message

    def message(self, message_id: str) -> ViewMessage | None:
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM copilot_messages WHERE id = %s", (message_id,)).fetchone()
        return _view(row) if row else None

    def messages(self, chat_id: str) -> list[ViewMessage]:
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM copilot_messages WHERE chat_id = %s ORDER BY created_at, seq", (chat_id,)
            ).fetchall()
        return [_view(row) for row in rows]

    def cover(self, chat_id: str, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._transaction() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO copilot_covered (chat_id, seq) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [(chat_id, s) for s in seqs],
            )

    def covered(self, chat_id: str) -> set[int]:
        with self._transaction() as conn:
            rows = conn.execute("SELECT seq FROM copilot_covered WHERE chat_id = %s", (chat_id,)).fetchall()
        return {row[0] for row in rows}

    # endregion

    # region documents

    def add_document(self, document: DocumentRecord, content: bytes | None = None) -> None:
        """Insert or replace the record, with the document's bytes when given (else the bytes kept stay)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO copilot_documents (id, chat_id, name, size, chunks, shared_by, created_at, content) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "chat_id = excluded.chat_id, name = excluded.name, size = excluded.size, "
                "chunks = excluded.chunks, shared_by = excluded.shared_by, created_at = excluded.created_at, "
                "content = COALESCE(excluded.content, copilot_documents.content)",
                (
                    document.id,
                    document.chat_id,
                    document.name,
                    document.size,
                    document.chunks,
                    document.shared_by,
                    document.created_at,
                    content,
                ),
            )

    def document_content(self, document_id: str) -> bytes | None:
        """The document's bytes; None when it has no record or was uploaded before they were kept here."""
        with self._transaction() as conn:
            row = conn.execute("SELECT content FROM copilot_documents WHERE id = %s", (document_id,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def documents(self, chat_id: str) -> list[DocumentRecord]:
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT id, chat_id, name, size, chunks, shared_by, created_at FROM copilot_documents "
                "WHERE chat_id = %s ORDER BY created_at, seq",
                (chat_id,),
            ).fetchall()
        return [DocumentRecord(r[0], r[1], r[2], int(r[3]), r[4], r[5], float(r[6])) for r in rows]

    # endregion


def _view(row: tuple[Any, ...]) -> ViewMessage:
    message_id, chat_id, created_at, role, user_id, user_name, kind, content, citations, usage = row
    return ViewMessage(
        chat_id=chat_id,
        author_role=role,
        user_id=user_id,
        user_name=user_name,
        content=content,
        type=kind,
        citations=None if citations is None else json.loads(citations),
        token_usage=None if usage is None else json.loads(usage),
        id=message_id,
        created_at=float(created_at),
    )
