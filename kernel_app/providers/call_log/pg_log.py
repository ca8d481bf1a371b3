"""The call log on PostgreSQL (where ``database_url`` is set): every instance's calls in one table.

Built on ``kernel_app.providers.postgres`` (the pool; the "call_log" migrations, versioned like the
other stores'). Times are the calling instance's clock, in epoch seconds as the SQLite log keeps them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from typing_extensions import LiteralString

from kernel_app.providers.call_log.records import CallQuery, CallRecord, dumps, record_from_row, record_values
from kernel_app.providers.postgres import Migration, migrate, open_pool

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.sql import Composable

NAMESPACE = "call_log"
MIGRATIONS = (
    Migration(
        1,
        "model calls: prompt, settings, answer, tokens, latency, function and conversation",
        """
        CREATE TABLE model_calls (
            id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            started_at        double precision NOT NULL,
            service           text NOT NULL,
            model             text NOT NULL,
            function          text,
            root_function     text,
            functions         jsonb NOT NULL,
            conversation      text,
            messages          jsonb NOT NULL,
            settings          jsonb NOT NULL,
            answer            text NOT NULL,
            tool_calls        jsonb NOT NULL,
            prompt_tokens     integer,
            completion_tokens integer,
            latency_ms        double precision NOT NULL,
            streamed          boolean NOT NULL,
            finish_reason     text,
            error             text,
            root_invocation   text,                 -- the outermost function's invocation
            root_result       text                  -- what it returned, once it ended
        );
        CREATE INDEX model_calls_by_time ON model_calls (started_at);
        CREATE INDEX model_calls_by_function ON model_calls (function, started_at);
        CREATE INDEX model_calls_by_root_function ON model_calls (root_function, started_at);
        CREATE INDEX model_calls_by_conversation ON model_calls (conversation, started_at);
        CREATE INDEX model_calls_by_root_invocation ON model_calls (root_invocation);
        """,
    ),
)
COLUMNS: LiteralString = (
    "id, started_at, service, model, functions, conversation, messages, settings, answer, tool_calls, "
    "prompt_tokens, completion_tokens, latency_ms, streamed, finish_reason, error, root_invocation, root_result"
)


def _migrate(conn: Connection[Any]) -> None:
    migrate(conn, NAMESPACE, MIGRATIONS)


class PgCallLog:
    """The call log in a PostgreSQL database; safe to share between threads, processes and machines."""

    backend = "postgresql"

    def __init__(self, database_url: str, *, max_connections: int = 2) -> None:
        self._pool = open_pool(
            database_url, min_size=1, max_size=max_connections, name="kernel-app-call-log", setup=_migrate
        )

    def write(self, record: CallRecord) -> int:
        self.write_many([record])
        return record.id or 0

    def write_many(self, records: list[CallRecord]) -> None:
        with self._pool.connection() as conn, conn.transaction():
            for record in records:
                row = conn.execute(INSERT, record_values(record, _json, _text)).fetchone()
                record.id = int(row[0]) if row else 0

    def set_root_result(self, invocation: str, result: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE model_calls SET root_result = %s WHERE root_invocation = %s", (_text(result), invocation)
            )

    def query(self, query: CallQuery) -> list[CallRecord]:
        from psycopg import sql

        where: list[Composable] = []
        params: list[Any] = []
        if query.function:
            where.append(sql.SQL("(function = %s OR root_function = %s)"))
            params += [query.function, query.function]
        if query.conversation:
            where.append(sql.SQL("conversation = %s"))
            params.append(query.conversation)
        if query.since is not None:
            where.append(sql.SQL("started_at >= %s"))
            params.append(query.since)
        if query.model:
            where.append(sql.SQL("model = %s"))
            params.append(query.model)
        if query.ids is not None:
            where.append(sql.SQL("id = ANY(%s)"))
            params.append(list(query.ids))
        statement: Composable = sql.SQL(f"SELECT {COLUMNS} FROM model_calls")
        if where:
            statement = sql.Composed([statement, sql.SQL(" WHERE "), sql.SQL(" AND ").join(where)])
        statement = sql.Composed([statement, sql.SQL(" ORDER BY started_at DESC, id DESC")])
        if query.limit is not None:
            statement = sql.Composed([statement, sql.SQL(" LIMIT %s")])
            params.append(query.limit)
        with self._pool.connection() as conn:
            rows = conn.execute(statement, params).fetchall()
        return [record_from_row(row, _same) for row in rows]

    def get(self, id: int) -> CallRecord | None:
        found = self.query(CallQuery(ids=[id], limit=1))
        return found[0] if found else None

    def clear(self, before: float | None = None) -> int:
        with self._pool.connection() as conn:
            if before is None:
                cursor = conn.execute("DELETE FROM model_calls")
            else:
                cursor = conn.execute("DELETE FROM model_calls WHERE started_at < %s", (before,))
            return cursor.rowcount

    def close(self) -> None:
        self._pool.close()


INSERT: LiteralString = (
    "INSERT INTO model_calls (started_at, service, model, function, root_function, functions, conversation, "
    "messages, settings, answer, tool_calls, prompt_tokens, completion_tokens, latency_ms, streamed, finish_reason, "
    "error, root_invocation, root_result) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s::jsonb, %s, "
    "%s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


def _json(value: Any) -> str:
    return dumps(value).replace("\\u0000", "")  # nor can jsonb hold an escaped NUL


def _text(value: str) -> str:
    return value.replace("\x00", "")  # PostgreSQL text cannot hold NUL; SQLite can, a model rarely writes it


def _same(value: Any) -> Any:
    return value  # psycopg decodes jsonb itself
