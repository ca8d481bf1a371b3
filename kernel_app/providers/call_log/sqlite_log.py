"""The call log in a SQLite file in the data folder (``calls.sqlite3``), used when no database_url is set."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from kernel_app.base.errors import KernelAppError
from kernel_app.providers.call_log.records import CallQuery, CallRecord, dumps, record_from_row, record_values

APPLICATION_ID = 0x4B41434C  # "KACL": marks the file as a Kernel App call log
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at        REAL NOT NULL,
    service           TEXT NOT NULL,
    model             TEXT NOT NULL,
    function          TEXT,
    root_function     TEXT,
    functions         TEXT NOT NULL,   -- JSON [{name, arguments}], outermost first
    conversation      TEXT,
    messages          TEXT NOT NULL,   -- JSON [{role, content}]
    settings          TEXT NOT NULL,   -- JSON
    answer            TEXT NOT NULL,
    tool_calls        TEXT NOT NULL,   -- JSON [{name, arguments}]
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    latency_ms        REAL NOT NULL,
    streamed          INTEGER NOT NULL,
    finish_reason     TEXT,
    error             TEXT,
    root_invocation   TEXT,            -- the outermost function's invocation
    root_result       TEXT             -- what it returned, once it ended
);
CREATE INDEX IF NOT EXISTS calls_by_time ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_by_function ON calls (function, started_at);
CREATE INDEX IF NOT EXISTS calls_by_root_function ON calls (root_function, started_at);
CREATE INDEX IF NOT EXISTS calls_by_conversation ON calls (conversation, started_at);
CREATE INDEX IF NOT EXISTS calls_by_root_invocation ON calls (root_invocation);
"""
COLUMNS = (
    "id, started_at, service, model, functions, conversation, messages, settings, answer, tool_calls, "
    "prompt_tokens, completion_tokens, latency_ms, streamed, finish_reason, error, root_invocation, root_result"
)


class CallLogError(KernelAppError):
    """The call log cannot be opened or read."""


class SqliteCallLog:
    """``log = SqliteCallLog(path)``; safe to share between threads (one connection behind a lock)."""

    backend = "local"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Writes come from the event loop's thread and from worker threads alike: one connection, a lock.
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")  # readers (`kernel-app logs`) never block a turn
            # NORMAL: no fsync per call. A crash may lose the last calls, never the file; a turn waits less.
            self._db.execute("PRAGMA synchronous=NORMAL")
            found = self._db.execute("PRAGMA application_id").fetchone()[0]
            if found not in (0, APPLICATION_ID):
                raise CallLogError(f"{self.path}: not a Kernel App call log: move it away or pass another --memory-dir")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CallLogError(
                    f"{self.path}: written by a newer Kernel App (schema {version}, this one knows {SCHEMA_VERSION}): "
                    "upgrade kernel-app"
                )
            with self._db:
                self._db.executescript(SCHEMA)
                self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise CallLogError(f"{self.path}: cannot open the call log: {exc}: move the file away") from None
        self._lock = threading.Lock()

    def write(self, record: CallRecord) -> int:
        self.write_many([record])
        return record.id or 0

    def write_many(self, records: list[CallRecord]) -> None:
        with self._lock, self._db:
            for record in records:
                cursor = self._db.execute(INSERT, record_values(record, dumps))
                record.id = int(cursor.lastrowid or 0)

    def set_root_result(self, invocation: str, result: str) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE calls SET root_result = ? WHERE root_invocation = ?", (result, invocation))

    def query(self, query: CallQuery) -> list[CallRecord]:
        where: list[str] = []
        params: list[Any] = []
        if query.function:
            where.append("(function = ? OR root_function = ?)")
            params += [query.function, query.function]
        if query.conversation:
            where.append("conversation = ?")
            params.append(query.conversation)
        if query.since is not None:
            where.append("started_at >= ?")
            params.append(query.since)
        if query.model:
            where.append("model = ?")
            params.append(query.model)
        if query.ids is not None:
            where.append(f"id IN ({', '.join('?' for _ in query.ids) or 'NULL'})")
            params += list(query.ids)
        sql = f"SELECT {COLUMNS} FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [record_from_row(row, json.loads) for row in rows]

    def get(self, id: int) -> CallRecord | None:
        found = self.query(CallQuery(ids=[id], limit=1))
        return found[0] if found else None

    def clear(self, before: float | None = None) -> int:
        with self._lock, self._db:
            if before is None:
                cursor = self._db.execute("DELETE FROM calls")
            else:
                cursor = self._db.execute("DELETE FROM calls WHERE started_at < ?", (before,))
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


INSERT = (
    "INSERT INTO calls (started_at, service, model, function, root_function, functions, conversation, messages, "
    "settings, answer, tool_calls, prompt_tokens, completion_tokens, latency_ms, streamed, finish_reason, error, "
    "root_invocation, root_result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
