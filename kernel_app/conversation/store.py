"""The conversation store: conversations and their messages in SQLite, beside the memory store.

Durability is the memory store's: WAL journal with ``synchronous=FULL``, one transaction per append.
:meth:`ConversationStore.append` returns only after its COMMIT, so a message the engine has
acknowledged survives ``kill -9`` (and, with FULL, a power cut). Everything the model ever saw is
kept here, function calls and results included; the engine decides how much of it goes back into a
prompt (:mod:`kernel_app.conversation.history`), never what is kept.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from kernel_app.base.errors import KernelAppError

if TYPE_CHECKING:
    from kernel_app.conversation.pg_store import PgConversationStore

DB_NAME = "conversations.sqlite3"
APPLICATION_ID = 0x4B414356  # "KACV": marks the file as a Kernel App conversation store
SCHEMA_VERSION = 2  # 2: conversations.owner
ROLES = ("system", "user", "assistant", "tool")
LOCAL_OWNER = "local"  # the owner of key-less local use, and of every conversation kept before owners were

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    service     TEXT NOT NULL DEFAULT '',
    model       TEXT NOT NULL DEFAULT '',
    owner       TEXT NOT NULL DEFAULT 'local'   -- the principal it belongs to (kernel_app.base.identity)
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated_at);
CREATE TABLE IF NOT EXISTS messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL DEFAULT '',
    name            TEXT,                -- tool messages: the Plugin.Function that ran
    call_id         TEXT,                -- tool messages: the call they answer
    tool_calls      TEXT,                -- assistant messages: JSON [{id, function, arguments}]
    tokens          INTEGER,             -- completion tokens of an assistant answer, when known
    created_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, seq);
"""
# Schema 1 -> 2: every conversation kept before has the local user as its owner (the column's default).
UPGRADE_TO_2 = (
    "ALTER TABLE conversations ADD COLUMN owner TEXT NOT NULL DEFAULT 'local'",
    "CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated_at)",
)


class ConversationStoreError(KernelAppError):
    """The conversation store cannot be opened or written."""


class ConversationNotFoundError(KernelAppError):
    """No conversation with that id."""

    exit_code = 2


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for: ``function`` is ``Plugin.Function``."""

    id: str
    function: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "function": self.function, "arguments": self.arguments}


@dataclass(frozen=True)
class Message:
    role: str
    content: str = ""
    name: str | None = None
    call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tokens: int | None = None
    seq: int = 0
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"seq": self.seq, "role": self.role, "content": self.content}
        if self.name is not None:
            data["name"] = self.name
        if self.call_id is not None:
            data["call_id"] = self.call_id
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        data["created_at"] = self.created_at
        return data


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: float
    updated_at: float
    service: str = ""
    model: str = ""
    message_count: int = 0
    owner: str = LOCAL_OWNER  # the principal whose conversation it is (not shown by to_dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "service": self.service,
            "model": self.model,
            "message_count": self.message_count,
        }


@dataclass(frozen=True)
class StartedTurn:
    """What a turn begins with (``start_turn``): its id for ``finish_turn`` / ``end_turn``, the conversation
    (its owner checked), and its stored messages, oldest first (``conversation.message_count`` of them)."""

    id: str
    conversation: Conversation
    messages: list[Message]


def default_store_path(memory_dir: Path | None = None) -> Path:
    """``conversations.sqlite3`` in the memory store's folder (the user's data dir by default)."""
    if memory_dir is None:
        from memories.store import default_store_dir

        memory_dir = default_store_dir()
    return Path(memory_dir).expanduser() / DB_NAME


def open_conversation_store(
    memory_dir: Path | str | None = None, *, database_url: str | None = None
) -> AnyConversationStore:
    """The conversation store the settings ask for: PostgreSQL when ``database_url`` is set, else the
    SQLite file beside the memory store (``default_store_path(memory_dir)``), exactly as before.

    Every place that opens the conversation store (the REPL's ``chat`` command, the server) calls this,
    as :func:`memories.open_store` is called for memory, so one setting moves both to the database.
    """
    path = default_store_path(Path(memory_dir) if memory_dir is not None else None)
    if database_url:
        from kernel_app.conversation.pg_store import PgConversationStore  # psycopg loads only here

        return PgConversationStore(database_url, path=path)
    return ConversationStore(path)


class ConversationStore:
    """``store = ConversationStore(path)``; ``":memory:"`` keeps nothing (tests, stateless surfaces)."""

    backend = "local"  # PgConversationStore's is "postgresql"

    def __init__(self, path: Path | str, *, synchronous: str = "FULL", busy_timeout: float = 30.0) -> None:
        self.path = path if str(path) == ":memory:" else Path(path)
        if isinstance(self.path, Path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConversationStoreError(f"{self.path.parent}: cannot create the folder: {error}") from None
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._open(synchronous.upper(), busy_timeout)
        except sqlite3.DatabaseError as error:
            raise ConversationStoreError(f"{self.path}: cannot open the conversation store: {error}") from None

    def _open(self, synchronous: str, busy_timeout: float) -> None:
        if synchronous not in {"FULL", "EXTRA", "NORMAL"}:
            raise ValueError("synchronous must be FULL, EXTRA or NORMAL")
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if application_id not in (0, APPLICATION_ID):
            raise ConversationStoreError(f"{self.path}: not a Kernel App conversation store")
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if application_id == 0 and tables and conn.execute("PRAGMA application_id").fetchone()[0] == 0:
            raise ConversationStoreError(f"{self.path}: not a Kernel App conversation store")
        if str(self.path) != ":memory:" and conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        with self._write() as cursor:
            if cursor.execute("PRAGMA application_id").fetchone()[0] == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        cursor.execute(statement)
                cursor.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                cursor.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConversationStoreError(
                f"{self.path}: written by a newer Kernel App (schema {version}): upgrade kernel-app"
            )
        if version < 2:
            with self._write() as cursor:
                if cursor.execute("PRAGMA user_version").fetchone()[0] < 2:  # another process may have done it
                    for statement in UPGRADE_TO_2:
                        cursor.execute(statement)
                    cursor.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self) -> Generator[sqlite3.Connection, None, None]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._conn.execute(sql, parameters)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    # region conversations

    def create(
        self,
        *,
        title: str = "",
        service: str = "",
        model: str = "",
        id: str | None = None,
        owner: str = LOCAL_OWNER,
    ) -> Conversation:
        """A new conversation of ``owner`` (a principal: see :mod:`kernel_app.base.identity`)."""
        now = time.time()
        conversation_id = id or uuid.uuid4().hex[:12]
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO conversations (id, title, created_at, updated_at, service, model, owner) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (conversation_id, title, now, now, service, model, owner),
                )
        except sqlite3.IntegrityError:
            raise ConversationStoreError(f"a conversation with id {conversation_id!r} already exists") from None
        return Conversation(conversation_id, title, now, now, service, model, owner=owner)

    # ``owner`` on a read or a delete: only that principal's conversation counts (another's is "not found",
    # never "forbidden": whether it exists is not told); None: anyone's (the CLI, and key-less local use).

    def get(self, conversation_id: str, *, owner: str | None = None) -> Conversation:
        rows = self._read(
            "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
            "FROM conversations c WHERE c.id = ? AND (? IS NULL OR c.owner = ?)",
            (conversation_id, owner, owner),
        )
        if not rows:
            raise ConversationNotFoundError(f"no conversation {conversation_id!r}: `kernel-app chat --list` lists them")
        return _conversation(rows[0])

    def exists(self, conversation_id: str, *, owner: str | None = None) -> bool:
        return bool(
            self._read(
                "SELECT 1 FROM conversations WHERE id = ? AND (? IS NULL OR owner = ?)", (conversation_id, owner, owner)
            )
        )

    def list(self, *, limit: int = 50, offset: int = 0, owner: str | None = None) -> list[Conversation]:
        """Most recently updated first (``owner``: only theirs)."""
        rows = self._read(
            "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
            "FROM conversations c WHERE (? IS NULL OR c.owner = ?) "
            "ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ? OFFSET ?",
            (owner, owner, limit, offset),
        )
        return [_conversation(row) for row in rows]

    def latest(self, *, owner: str | None = None) -> Conversation | None:
        found = self.list(limit=1, owner=owner)
        return found[0] if found else None

    def update(
        self, conversation_id: str, *, title: str | None = None, service: str | None = None, model: str | None = None
    ) -> None:
        changes = {k: v for k, v in {"title": title, "service": service, "model": model}.items() if v is not None}
        assignments = ", ".join(f"{key} = ?" for key in changes)
        with self._write() as conn:
            conn.execute(
                f"UPDATE conversations SET {assignments}{', ' if assignments else ''}updated_at = ? WHERE id = ?",
                (*changes.values(), time.time(), conversation_id),
            )

    def delete(self, conversation_id: str, *, owner: str | None = None) -> bool:
        with self._write() as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM conversations WHERE id = ? AND (? IS NULL OR owner = ?)",
                    (conversation_id, owner, owner),
                ).fetchone()
                is None
            ):
                return False
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            return conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

    # endregion

    # region messages

    def append(self, conversation_id: str, message: Message) -> Message:
        """Store one message; returns it with its ``seq`` once it is committed (durable)."""
        return self.append_many(conversation_id, [message])[0]

    def append_many(self, conversation_id: str, messages: list[Message]) -> list[Message]:
        """Several messages in one transaction (an assistant's tool calls and their results)."""
        stored: list[Message] = []
        now = time.time()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is None:
                raise ConversationNotFoundError(f"no conversation {conversation_id!r}")
            for message in messages:
                if message.role not in ROLES:
                    raise ValueError(f"unknown role {message.role!r}")
                calls = json.dumps([c.to_dict() for c in message.tool_calls]) if message.tool_calls else None
                cursor = conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, name, call_id, tool_calls, tokens, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        message.role,
                        message.content,
                        message.name,
                        message.call_id,
                        calls,
                        message.tokens,
                        now,
                    ),
                )
                stored.append(_replace(message, seq=int(cursor.lastrowid or 0), created_at=now))
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return stored

    def messages(self, conversation_id: str, *, after: int = 0) -> list[Message]:
        """Every message of the conversation in order (``after``: only those with a larger ``seq``)."""
        rows = self._read(
            "SELECT * FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq", (conversation_id, after)
        )
        return [_message(row) for row in rows]

    # endregion

    # region turns in progress (PgConversationStore's; see there)

    def ping(self) -> None:
        """The file is always there once open: nothing to check (PostgreSQL's store asks the server)."""

    def begin_turn(self, conversation_id: str, said: str) -> str:
        """Not tracked here: this file is one process's, so no other instance could take over a turn of a
        process that died (a turn that dies before it ends leaves nothing, as it always did)."""
        return ""

    def end_turn(self, turn_id: str) -> None:
        """Nothing to forget (see :meth:`begin_turn`)."""

    def start_turn(self, conversation_id: str, said: str, *, owner: str | None = None) -> StartedTurn:
        """:meth:`get`, :meth:`begin_turn` and :meth:`messages` for the engine's turn (PostgreSQL's store
        does them in one round trip); ConversationNotFoundError for another ``owner``'s conversation."""
        conversation = self.get(conversation_id, owner=owner)
        return StartedTurn(self.begin_turn(conversation_id, said), conversation, self.messages(conversation_id))

    def finish_turn(
        self, turn_id: str, conversation_id: str, messages: list[Message], *, title: str | None = None
    ) -> list[Message]:
        """:meth:`append_many`, then the ``title`` (when given) and :meth:`end_turn`: the turn's end."""
        stored = self.append_many(conversation_id, messages)
        if title is not None:
            self.update(conversation_id, title=title)
        self.end_turn(turn_id)
        return stored

    def keep_turns_alive(self) -> None:
        """Nothing to keep alive (see :meth:`begin_turn`)."""

    def mark_interrupted_turns(self, older_than: float) -> int:
        """Nothing to mark (see :meth:`begin_turn`)."""
        return 0

    # endregion

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Either backend: the same methods, the same promises (tests/test_conversation_backends.py runs both).
AnyConversationStore: TypeAlias = "ConversationStore | PgConversationStore"


def _replace(message: Message, **changes: Any) -> Message:
    import dataclasses

    return dataclasses.replace(message, **changes)


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        row["id"],
        row["title"],
        row["created_at"],
        row["updated_at"],
        row["service"],
        row["model"],
        row["n"],
        row["owner"],
    )


def _message(row: sqlite3.Row) -> Message:
    calls = tuple(
        ToolCall(c["id"], c["function"], c.get("arguments") or {}) for c in json.loads(row["tool_calls"] or "[]")
    )
    return Message(
        role=row["role"],
        content=row["content"],
        name=row["name"],
        call_id=row["call_id"],
        tool_calls=calls,
        tokens=row["tokens"],
        seq=row["seq"],
        created_at=row["created_at"],
    )
