"""PgConversationStore: the conversation store on PostgreSQL, so a conversation continues on any instance.

Same public API and promises as :class:`kernel_app.conversation.store.ConversationStore`: ``append``
returns only after its COMMIT (PostgreSQL's default ``synchronous_commit = on`` makes that durable),
everything the model saw is kept, ``list`` is most recently updated first. What differs is who may
write: several servers on one database append to one conversation at once. Each conversation row
holds the last ``seq`` it handed out; an append bumps it with an ``UPDATE ... RETURNING`` in the
same statement as its INSERT, so the row lock orders racing appends and no message is lost,
duplicated or reordered. ``seq`` counts per conversation (1, 2, 3...), where SQLite's is one counter
for the file: both only promise "increasing within a conversation", which is what ``after`` needs.
Times come from the database's clock, so instances with skewed clocks still agree on the order of
``list``. Tables are created and upgraded by the "conversations" migrations.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import LiteralString

from kernel_app.conversation.store import (
    LOCAL_OWNER,
    ROLES,
    Conversation,
    ConversationNotFoundError,
    ConversationStoreError,
    Message,
    StartedTurn,
    ToolCall,
    default_store_path,
)
from kernel_app.providers.postgres import Migration, describe_url, migrate, open_pool, transaction

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

NAMESPACE = "conversations"
MIGRATIONS = (
    Migration(
        1,
        "conversations and their messages, a message sequence per conversation",
        """
        CREATE TABLE conversations (
            id          text PRIMARY KEY,
            title       text NOT NULL DEFAULT '',
            created_at  double precision NOT NULL,   -- epoch seconds, as the SQLite store keeps them
            updated_at  double precision NOT NULL,
            service     text NOT NULL DEFAULT '',
            model       text NOT NULL DEFAULT '',
            last_seq    bigint NOT NULL DEFAULT 0,    -- the last message seq handed out (see append_many)
            created_order bigint GENERATED ALWAYS AS IDENTITY  -- breaks ties of updated_at, as SQLite's rowid
        );
        CREATE INDEX conversations_by_update ON conversations (updated_at DESC, created_order DESC);
        CREATE TABLE conversation_messages (
            conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq             bigint NOT NULL,
            role            text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
            content         text NOT NULL DEFAULT '',
            name            text,                   -- tool messages: the Plugin.Function that ran
            call_id         text,                   -- tool messages: the call they answer
            tool_calls      jsonb,                  -- assistant messages: [{id, function, arguments}]
            tokens          integer,                -- completion tokens of an assistant answer, when known
            created_at      double precision NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        );
        """,
    ),
    Migration(
        2,
        "turns in progress, so that another instance marks a turn whose server died as interrupted",
        """
        CREATE TABLE conversation_turns (
            id              text PRIMARY KEY,
            conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            owner           text NOT NULL,              -- the instance running it (PgConversationStore.owner)
            said            text NOT NULL,              -- the user's words, not stored until the turn ends
            after_seq       bigint NOT NULL,            -- the conversation's last seq when the turn began
            started_at      double precision NOT NULL,
            alive_at        double precision NOT NULL   -- its owner's last heartbeat (keep_turns_alive)
        );
        CREATE INDEX conversation_turns_by_alive ON conversation_turns (alive_at);
        """,
    ),
    Migration(
        3,
        "each conversation's owner (a principal); those kept before belong to the local user",
        """
        ALTER TABLE conversations ADD COLUMN owner text NOT NULL DEFAULT 'local';
        CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC, created_order DESC);
        """,
    ),
)
INTERRUPTED = "(interrupted: the server answering this turn stopped before it finished; ask again)"
# The database's clock, in the SQLite store's unit (epoch seconds); clock_timestamp so that two statements
# of one transaction (and two racing instances) never go back in time relative to each other.
NOW: LiteralString = "extract(epoch FROM clock_timestamp())::double precision"
COUNTED: LiteralString = (
    "SELECT c.id, c.title, c.created_at, c.updated_at, c.service, c.model, "
    "(SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id) AS n, c.owner "
    "FROM conversations c"
)
# ``owner`` on a read or a delete: only that principal's conversation counts (another's is "not found");
# None: anyone's. The parameter is typed, so that PostgreSQL knows what a NULL is.
OWNED: LiteralString = "(%s::text IS NULL OR c.owner = %s)"
MESSAGE_COLUMNS: LiteralString = "seq, role, content, name, call_id, tool_calls, tokens, created_at"
# How a turn begins (start_turn): the owner's conversation, its turn-in-progress row and its messages, in
# one statement. The INSERT runs whether or not the result reads it (a data-modifying WITH always runs
# once), and inserts nothing when ``c`` is empty (not found, or another's). One row per message, the
# conversation's columns on each; a conversation without messages gives one row, its message columns NULL.
START_TURN: LiteralString = (
    "WITH c AS ("
    "  SELECT c.id, c.title, c.created_at, c.updated_at, c.service, c.model, c.owner, c.last_seq"
    f"  FROM conversations c WHERE c.id = %s AND {OWNED}"
    "), turn AS ("
    "  INSERT INTO conversation_turns (id, conversation_id, owner, said, after_seq, started_at, alive_at)"
    f"  SELECT %s, c.id, %s, %s, c.last_seq, {NOW}, {NOW} FROM c"
    ") SELECT c.id, c.title, c.created_at, c.updated_at, c.service, c.model, c.owner, "
    "m.seq, m.role, m.content, m.name, m.call_id, m.tool_calls, m.tokens, m.created_at "
    "FROM c LEFT JOIN conversation_messages m ON m.conversation_id = c.id ORDER BY m.seq"
)
# Appending messages (_append): the turn's in-progress row, when one is given, goes in the same statement
# (finish_turn), as does a new title; a NULL turn id deletes nothing, a NULL title keeps the title.
APPEND: LiteralString = (
    "WITH ended AS (DELETE FROM conversation_turns WHERE id = %s), bumped AS ("
    f"  UPDATE conversations SET last_seq = last_seq + %s, updated_at = {NOW}, title = COALESCE(%s, title)"
    "  WHERE id = %s RETURNING last_seq, updated_at"
    ") INSERT INTO conversation_messages (conversation_id, seq, role, content, name, call_id, tool_calls, "
    "tokens, created_at) "
    "SELECT %s, b.last_seq - %s + m.n, m.role, m.content, m.name, m.call_id, m.tool_calls, m.tokens, b.updated_at "
    "FROM bumped b, unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[], %s::integer[]) "
    "WITH ORDINALITY AS m(role, content, name, call_id, tool_calls, tokens, n) "
    "RETURNING seq, created_at"
)
# The same with no messages: the conversation is touched (its updated_at, maybe its title).
TOUCH: LiteralString = (
    "WITH ended AS (DELETE FROM conversation_turns WHERE id = %s) "
    f"UPDATE conversations SET updated_at = {NOW}, title = COALESCE(%s, title) WHERE id = %s RETURNING id"
)


class PgConversationStore:
    """Conversations in a PostgreSQL database. Safe to share between threads, processes and machines.

    ``database_url`` is a libpq URL (the password may come from PGPASSWORD or ~/.pgpass). ``path`` is
    where the local conversation store would be: what stays per instance (Teams' and chat-copilot's own
    files) is kept beside it, as it is beside the SQLite store.
    """

    backend = "postgresql"

    def __init__(self, database_url: str, *, path: Path | str | None = None, max_connections: int = 4) -> None:
        import os
        import socket
        import uuid

        self.database_url = database_url
        # Who runs a turn: this process, on this host (a restarted process with the same pid is another owner).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._running: set[str] = set()  # the turns this instance runs now: the ones its heartbeat keeps alive
        self._running_lock = threading.Lock()  # turns begin on the event loop, the heartbeat reads on a thread
        self.path = Path(path) if path is not None else default_store_path()
        # Autocommit: nearly every call is one statement, its own transaction (see _statement); the sweep's
        # transaction (_transaction) says BEGIN itself.
        self._pool: ConnectionPool = open_pool(
            database_url,
            max_size=max_connections,
            name="kernel-app-conversations",
            setup=_migrate,
            autocommit=True,
        )
        # The turns-in-progress rows (see _bookkeeping): their own connections, whose commits do not wait
        # for the disk, each statement its own transaction: one round trip where BEGIN, SET LOCAL, the
        # statement and COMMIT took four.
        self._turns_pool: ConnectionPool = open_pool(
            database_url,
            max_size=2,
            name="kernel-app-turns",
            autocommit=True,
            session={"synchronous_commit": "off"},
        )

    def __repr__(self) -> str:
        return f"PgConversationStore({describe_url(self.database_url)!r})"

    def _transaction(self) -> AbstractContextManager[Connection[Any]]:
        """One transaction: committed when the block ends (before the caller hears of it), else rolled back
        (psycopg's ``transaction()`` on an autocommit connection sends BEGIN and COMMIT itself)."""
        return transaction(self._pool)

    @contextmanager
    def _bookkeeping(self) -> Generator[Connection[Any], None, None]:
        """A connection for one statement whose commit does not wait for the disk (autocommit,
        ``synchronous_commit = off``), for statements that write only the turns-in-progress rows
        (:meth:`start_turn`, :meth:`end_turn`, the heartbeat). A durable COMMIT waits for a WAL flush
        (~5 ms on a plain disk), and the server's event loop waits with it (start_turn runs on it). The
        rows are visible to other instances at once, and survive a server's kill -9 like any row; only a
        crash of PostgreSQL itself within a fraction of a second may lose them. A lost row means that a
        turn cut by that same crash is not marked interrupted; a lost DELETE of :meth:`end_turn` (a turn
        that failed, storing nothing), that the failed turn is marked interrupted. A turn that stored its
        messages ended with them, in :meth:`finish_turn`'s one durable statement."""
        with self._turns_pool.connection() as conn:  # autocommit, synchronous_commit = off
            yield conn

    def _statement(self) -> AbstractContextManager[Connection[Any]]:
        """A connection for one statement, which is its own transaction (the pool's connections are in
        autocommit): the same atomicity and durability as :meth:`_transaction` for a single statement,
        without the BEGIN and COMMIT round trips. A turn's end (:meth:`finish_turn`) is one of these."""
        return self._pool.connection()

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
        import uuid

        from psycopg import errors

        conversation_id = id or uuid.uuid4().hex[:12]
        try:
            with self._statement() as conn:
                row = conn.execute(
                    "INSERT INTO conversations (id, title, created_at, updated_at, service, model, owner) "
                    f"VALUES (%s, %s, {NOW}, {NOW}, %s, %s, %s) RETURNING created_at",
                    (conversation_id, title, service, model, owner),
                ).fetchone()
        except errors.UniqueViolation:
            raise ConversationStoreError(f"a conversation with id {conversation_id!r} already exists") from None
        assert row is not None  # INSERT ... RETURNING always returns its row
        now = float(row[0])
        return Conversation(conversation_id, title, now, now, service, model, owner=owner)

    def get(self, conversation_id: str, *, owner: str | None = None) -> Conversation:
        with self._statement() as conn:
            row = conn.execute(f"{COUNTED} WHERE c.id = %s AND {OWNED}", (conversation_id, owner, owner)).fetchone()
        if row is None:
            raise ConversationNotFoundError(f"no conversation {conversation_id!r}: `kernel-app chat --list` lists them")
        return _conversation(row)

    def exists(self, conversation_id: str, *, owner: str | None = None) -> bool:
        with self._statement() as conn:
            found = conn.execute(
                f"SELECT 1 FROM conversations c WHERE c.id = %s AND {OWNED}", (conversation_id, owner, owner)
            ).fetchone()
        return found is not None

    def list(self, *, limit: int = 50, offset: int = 0, owner: str | None = None) -> list[Conversation]:
        """Most recently updated first (``owner``: only theirs)."""
        with self._statement() as conn:
            rows = conn.execute(
                f"{COUNTED} WHERE {OWNED} ORDER BY c.updated_at DESC, c.created_order DESC LIMIT %s OFFSET %s",
                (owner, owner, max(limit, 0), max(offset, 0)),
            ).fetchall()
        return [_conversation(row) for row in rows]

    def latest(self, *, owner: str | None = None) -> Conversation | None:
        found = self.list(limit=1, owner=owner)
        return found[0] if found else None

    def update(
        self, conversation_id: str, *, title: str | None = None, service: str | None = None, model: str | None = None
    ) -> None:
        # Each column keeps its value where the argument is None: one statement, no SQL built from names.
        with self._statement() as conn:
            conn.execute(
                "UPDATE conversations SET title = COALESCE(%s, title), service = COALESCE(%s, service), "
                f"model = COALESCE(%s, model), updated_at = {NOW} WHERE id = %s",
                (title, service, model, conversation_id),
            )

    def delete(self, conversation_id: str, *, owner: str | None = None) -> bool:
        with self._statement() as conn:
            deleted = conn.execute(
                f"DELETE FROM conversations c WHERE c.id = %s AND {OWNED}", (conversation_id, owner, owner)
            )
            return deleted.rowcount > 0

    # endregion

    # region messages

    def append(self, conversation_id: str, message: Message) -> Message:
        """Store one message; returns it with its ``seq`` once it is committed (durable)."""
        return self.append_many(conversation_id, [message])[0]

    def append_many(self, conversation_id: str, messages: list[Message]) -> list[Message]:
        """Several messages in one transaction (an assistant's tool calls and their results).

        The conversation's row is updated first: its lock makes a racing append from another instance
        wait for this one's COMMIT, then take the next block of ``seq`` numbers.
        """
        for message in messages:
            if message.role not in ROLES:
                raise ValueError(f"unknown role {message.role!r}")
        with self._statement() as conn:  # _append is one statement
            return _append(conn, conversation_id, messages)

    def messages(self, conversation_id: str, *, after: int = 0) -> list[Message]:
        """Every message of the conversation in order (``after``: only those with a larger ``seq``)."""
        with self._statement() as conn:
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM conversation_messages WHERE conversation_id = %s AND seq > %s "
                "ORDER BY seq",
                (conversation_id, after),
            ).fetchall()
        return [_message(row) for row in rows]

    # endregion

    # region turns in progress

    def ping(self) -> None:
        """Raises (psycopg's OperationalError) unless the database answers now: /readyz asks."""
        with self._statement() as conn:
            conn.execute("SELECT 1")

    def begin_turn(self, conversation_id: str, said: str) -> str:
        """Record that this instance is running a turn of ``conversation_id`` (its words are ``said``).

        The engine stores a turn's messages when it ends; should this process die first, the row stays,
        its heartbeat stops, and another instance's :meth:`mark_interrupted_turns` finishes it as
        interrupted instead of leaving the conversation without a trace of it (or half-written, when its
        function calls were stored).
        """
        import uuid

        turn_id = uuid.uuid4().hex
        with self._bookkeeping() as conn:
            conn.execute(
                "INSERT INTO conversation_turns (id, conversation_id, owner, said, after_seq, started_at, alive_at) "
                f"SELECT %s, id, %s, %s, last_seq, {NOW}, {NOW} FROM conversations WHERE id = %s",
                (turn_id, self.owner, said, conversation_id),
            )
        with self._running_lock:
            self._running.add(turn_id)
        return turn_id

    def end_turn(self, turn_id: str) -> None:
        """The turn ended (its messages are stored, or it failed and said so): forget it."""
        with self._running_lock:  # first: a row left by a failed DELETE expires, and is found finished
            self._running.discard(turn_id)
        with self._bookkeeping() as conn:
            conn.execute("DELETE FROM conversation_turns WHERE id = %s", (turn_id,))

    def start_turn(self, conversation_id: str, said: str, *, owner: str | None = None) -> StartedTurn:
        """:meth:`get` (``owner``'s conversation only), :meth:`begin_turn` and :meth:`messages` in one
        statement, so one round trip: how the engine begins a turn. Another owner's conversation, or none,
        is ConversationNotFoundError, and no turn is recorded. The messages and the turn's ``after_seq``
        come from one snapshot. On the turns' connection (see :meth:`_bookkeeping`): the turn's row is the
        only thing it writes."""
        import uuid

        turn_id = uuid.uuid4().hex
        with self._running_lock:  # first: should this process die before its row is written, nothing is lost
            self._running.add(turn_id)
        try:
            with self._bookkeeping() as conn:
                rows = conn.execute(START_TURN, (conversation_id, owner, owner, turn_id, self.owner, said)).fetchall()
        except BaseException:
            with self._running_lock:
                self._running.discard(turn_id)
            raise
        if not rows:
            with self._running_lock:
                self._running.discard(turn_id)
            raise ConversationNotFoundError(f"no conversation {conversation_id!r}: `kernel-app chat --list` lists them")
        messages = [_message(row[7:]) for row in rows if row[7] is not None]  # no messages: one row of NULLs
        return StartedTurn(turn_id, _conversation((*rows[0][:6], len(messages), rows[0][6])), messages)

    def finish_turn(
        self, turn_id: str, conversation_id: str, messages: list[Message], *, title: str | None = None
    ) -> list[Message]:
        """:meth:`append_many`, the ``title`` (when given) and :meth:`end_turn` in one statement, so one
        round trip and one durable COMMIT: how the engine ends a turn. The turn's row goes in the same
        transaction as its messages, so another instance sees either a turn in progress or its answer,
        never a turn without either."""
        for message in messages:
            if message.role not in ROLES:
                raise ValueError(f"unknown role {message.role!r}")
        with self._running_lock:  # first: a row left by a failed statement expires, and is marked interrupted
            self._running.discard(turn_id)
        with self._statement() as conn:
            return _append(conn, conversation_id, messages, turn_id=turn_id, title=title)

    def running_turns(self) -> list[str]:
        """The ids of the turns this instance runs now."""
        with self._running_lock:
            return list(self._running)

    def keep_turns_alive(self) -> None:
        """The heartbeat of this instance's running turns (the server calls it every few seconds)."""
        running = self.running_turns()
        if not running:
            return
        with self._bookkeeping() as conn:
            conn.execute(f"UPDATE conversation_turns SET alive_at = {NOW} WHERE id = ANY(%s::text[])", (running,))

    def mark_interrupted_turns(self, older_than: float) -> int:
        """Finish the turns whose heartbeat stopped ``older_than`` seconds ago (their server died): each gets
        the user's words, if they were not stored yet, and an assistant message saying it was interrupted,
        in one transaction. A turn whose answer is stored already (its row outlived it) is only forgotten.
        Returns how many were marked. Safe to run on every instance at once: each row is taken once.
        """
        marked = 0
        with self._transaction() as conn:
            gone = conn.execute(
                f"DELETE FROM conversation_turns WHERE alive_at < {NOW} - %s AND NOT (id = ANY(%s::text[])) "
                "RETURNING conversation_id, said, after_seq",
                (older_than, self.running_turns()),
            ).fetchall()
            for conversation_id, said, after_seq in gone:
                rows = conn.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM conversation_messages WHERE conversation_id = %s AND seq > %s "
                    "ORDER BY seq",
                    (conversation_id, after_seq),
                ).fetchall()
                since = [_message(row) for row in rows]
                if since and since[-1].role == "assistant" and not since[-1].tool_calls:
                    continue  # it finished: only its DELETE was lost
                missing = [] if any(m.role == "user" and m.content == said for m in since) else [Message("user", said)]
                _append(conn, conversation_id, [*missing, Message("assistant", INTERRUPTED)])
                marked += 1
        return marked

    # endregion

    def close(self) -> None:
        self._turns_pool.close()
        self._pool.close()

    def __enter__(self) -> PgConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _migrate(conn: Connection[Any]) -> None:
    migrate(conn, NAMESPACE, MIGRATIONS)


def _append(
    conn: Connection[Any],
    conversation_id: str,
    messages: list[Message],
    *,
    turn_id: str | None = None,
    title: str | None = None,
) -> list[Message]:
    """Append in one statement (its own transaction in autocommit, or part of the caller's). The
    conversation's row is updated first: its lock makes a racing append from another instance wait for
    this one's COMMIT, then take the next block of ``seq`` numbers. One statement, so one round trip.
    ``turn_id``: that turn's in-progress row goes in the same statement; ``title``: the conversation's
    new title (None: kept)."""
    if not messages:
        row = conn.execute(TOUCH, (turn_id, title, conversation_id))
        if row.fetchone() is None:
            raise ConversationNotFoundError(f"no conversation {conversation_id!r}")
        return []
    columns = list(zip(*(_message_row(conversation_id, message)[2:8] for message in messages), strict=True))
    rows = conn.execute(
        APPEND,
        (
            turn_id,
            len(messages),
            title,
            conversation_id,
            conversation_id,
            len(messages),
            *(list(column) for column in columns),
        ),
    ).fetchall()
    if not rows:
        raise ConversationNotFoundError(f"no conversation {conversation_id!r}")
    first = min(int(seq) for seq, _ in rows)
    now = float(rows[0][1])
    return [dataclasses.replace(message, seq=first + n, created_at=now) for n, message in enumerate(messages)]


def _message_row(conversation_id: str, message: Message) -> tuple[Any, ...]:
    from psycopg.types.json import Jsonb

    calls = Jsonb([call.to_dict() for call in message.tool_calls]) if message.tool_calls else None
    return (
        conversation_id,
        message.seq,
        message.role,
        message.content,
        message.name,
        message.call_id,
        calls,
        message.tokens,
        message.created_at,
    )


def _conversation(row: tuple[Any, ...]) -> Conversation:
    id_, title, created_at, updated_at, service, model, count, owner = row
    return Conversation(id_, title, float(created_at), float(updated_at), service, model, int(count), owner)


def _message(row: tuple[Any, ...]) -> Message:
    seq, role, content, name, call_id, tool_calls, tokens, created_at = row
    raw: list[dict[str, Any]] = tool_calls or []  # jsonb comes back as Python lists and dicts
    calls = tuple(ToolCall(c["id"], c["function"], c.get("arguments") or {}) for c in raw)
    return Message(
        role=role,
        content=content,
        name=name,
        call_id=call_id,
        tool_calls=calls,
        tokens=tokens,
        seq=int(seq),
        created_at=float(created_at),
    )


__all__ = ["INTERRUPTED", "MIGRATIONS", "NAMESPACE", "PgConversationStore"]
