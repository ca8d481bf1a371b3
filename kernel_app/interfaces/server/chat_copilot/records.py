"""What the web app sees of a chat beyond the conversation store: ``copilot.sqlite3`` beside it.

The conversation store keeps what the model sees (and the REPL resumes); this keeps the web app's view
of the same chat: which conversations are chats, their settings and participants, and each message it
shows with its id, author, type (plan, document) and citations. Store messages a web chat turn produced
are marked ``covered`` (the view already holds them, as the user typed them); any other store message
(a turn from ``kernel-app chat --resume``) is shown as it is.

With ``database_url`` the same records live in PostgreSQL (:mod:`.pg_records`), shared by every
instance: :func:`open_records` picks the backend.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from kernel_app.interfaces.server.side_store import SideStore

if TYPE_CHECKING:
    from kernel_app.interfaces.server.chat_copilot.pg_records import PgCopilotRecords

DB_NAME = "copilot.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id                 TEXT PRIMARY KEY,
    created_at         REAL NOT NULL,
    system_description TEXT NOT NULL DEFAULT '',
    memory_balance     REAL NOT NULL DEFAULT 0.5
);
CREATE TABLE IF NOT EXISTS participants (
    chat_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);
CREATE TABLE IF NOT EXISTS messages (
    id          TEXT PRIMARY KEY,
    chat_id     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    author_role INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    user_name   TEXT NOT NULL,
    type        INTEGER NOT NULL DEFAULT 0,
    content     TEXT NOT NULL DEFAULT '',
    citations   TEXT,
    token_usage TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (chat_id, created_at);
CREATE TABLE IF NOT EXISTS covered (
    chat_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (chat_id, seq)
);
CREATE TABLE IF NOT EXISTS documents (
    id         TEXT PRIMARY KEY,
    chat_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    chunks     INTEGER NOT NULL,
    shared_by  TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


@dataclass
class ViewMessage:
    """One message as the web app shows it; ``author_role`` 0 user, 1 bot; ``type`` 0 message, 1 plan, 2 document."""

    chat_id: str
    author_role: int
    user_id: str
    user_name: str
    content: str = ""
    type: int = 0
    citations: list[dict[str, Any]] | None = None
    token_usage: dict[str, int] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ChatRecord:
    id: str
    created_at: float
    system_description: str
    memory_balance: float


@dataclass(frozen=True)
class DocumentRecord:
    id: str
    chat_id: str
    name: str
    size: int
    chunks: int
    shared_by: str
    created_at: float


class CopilotRecords(SideStore):
    """``records = CopilotRecords.beside(store.path)``; thread-safe, one connection, as durable as the
    conversation store it annotates (:mod:`kernel_app.interfaces.server.side_store`)."""

    DB_NAME = DB_NAME
    SCHEMA = SCHEMA
    backend = "sqlite"

    def _run(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, parameters).fetchall()

    # region chats

    def add_chat(self, chat_id: str, *, system_description: str = "", memory_balance: float = 0.5) -> ChatRecord:
        now = time.time()
        self._run(
            "INSERT OR IGNORE INTO chats (id, created_at, system_description, memory_balance) VALUES (?, ?, ?, ?)",
            (chat_id, now, system_description, memory_balance),
        )
        found = self.chat(chat_id)
        assert found is not None
        return found

    def chat(self, chat_id: str) -> ChatRecord | None:
        rows = self._run(
            "SELECT id, created_at, system_description, memory_balance FROM chats WHERE id = ?", (chat_id,)
        )
        return ChatRecord(*rows[0]) if rows else None

    def chat_ids(self) -> list[str]:
        return [row[0] for row in self._run("SELECT id FROM chats")]

    def update_chat(
        self, chat_id: str, *, system_description: str | None = None, memory_balance: float | None = None
    ) -> None:
        if system_description is not None:
            self._run("UPDATE chats SET system_description = ? WHERE id = ?", (system_description, chat_id))
        if memory_balance is not None:
            self._run("UPDATE chats SET memory_balance = ? WHERE id = ?", (memory_balance, chat_id))

    def delete_chat(self, chat_id: str) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for table in ("participants", "messages", "covered", "documents"):
                    self._conn.execute(f"DELETE FROM {table} WHERE chat_id = ?", (chat_id,))
                self._conn.execute("DELETE FROM chats WHERE id = ?", (chat_id,))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # endregion

    # region participants

    def join(self, chat_id: str, user_id: str) -> bool:
        """True when the user was not a participant yet."""
        before = self.participants(chat_id)
        self._run("INSERT OR IGNORE INTO participants (chat_id, user_id) VALUES (?, ?)", (chat_id, user_id))
        return user_id not in before

    def participants(self, chat_id: str) -> list[str]:
        return [row[0] for row in self._run("SELECT user_id FROM participants WHERE chat_id = ?", (chat_id,))]

    # endregion

    # region messages

    def save(self, message: ViewMessage) -> ViewMessage:
        """Insert or replace (a streamed reply is saved when it is final)."""
        self._run(
            "INSERT OR REPLACE INTO messages (id, chat_id, created_at, author_role, user_id, user_name, type, "
            "content, citations, token_usage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        rows = self._run(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,))
        return _view(rows[0]) if rows else None

    def messages(self, chat_id: str) -> list[ViewMessage]:
        rows = self._run(f"SELECT {_COLUMNS} FROM messages WHERE chat_id = ? ORDER BY created_at", (chat_id,))
        return [_view(row) for row in rows]

    def cover(self, chat_id: str, seqs: list[int]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO covered (chat_id, seq) VALUES (?, ?)", [(chat_id, s) for s in seqs]
            )

    def covered(self, chat_id: str) -> set[int]:
        return {row[0] for row in self._run("SELECT seq FROM covered WHERE chat_id = ?", (chat_id,))}

    # endregion

    # region documents

    def add_document(self, document: DocumentRecord, content: bytes | None = None) -> None:
        """Insert or replace the record. ``content`` is not kept: on one server the bytes stay in the
        ``uploads/`` file they were ingested from (:meth:`document_content` is None)."""
        self._run(
            "INSERT OR REPLACE INTO documents (id, chat_id, name, size, chunks, shared_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                document.id,
                document.chat_id,
                document.name,
                document.size,
                document.chunks,
                document.shared_by,
                document.created_at,
            ),
        )

    def documents(self, chat_id: str) -> list[DocumentRecord]:
        rows = self._run(
            "SELECT id, chat_id, name, size, chunks, shared_by, created_at FROM documents WHERE chat_id = ? "
            "ORDER BY created_at",
            (chat_id,),
        )
        return [DocumentRecord(*row) for row in rows]

    def document_content(self, document_id: str) -> bytes | None:
        """Always None here: the bytes are in the receiving server's ``uploads/`` folder."""
        return None

    # endregion


AnyCopilotRecords: TypeAlias = "CopilotRecords | PgCopilotRecords"


def open_records(store_path: Path | str, database_url: str | None = None) -> AnyCopilotRecords:
    """The web app's records: in PostgreSQL when ``database_url`` is set, else in ``copilot.sqlite3``
    beside the conversation store at ``store_path`` (exactly as before)."""
    if database_url:
        from kernel_app.interfaces.server.chat_copilot.pg_records import PgCopilotRecords

        return PgCopilotRecords(database_url)
    return CopilotRecords.beside(store_path)


_COLUMNS = "id, chat_id, created_at, author_role, user_id, user_name, type, content, citations, token_usage"


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
        created_at=created_at,
    )
