"""PgDecisionStore: records waiting for a person's decision, on PostgreSQL (issue 19).

The same methods and promises as :class:`kernel_app.interfaces.server.side_store.DecisionStore`, for
servers that share one database: :meth:`PgDecisionStore.decide` is one conditional UPDATE (``WHERE
state = 'waiting'``), so two servers racing on one approval decide it, and run it, exactly once.
Every kind of record (Teams' plans and calls, chat-copilot's plans) shares one table,
``pending_decisions``, keyed by kind and id: the columns the store itself reads (state, outcome,
card id, times) are columns, the rest of the record is ``jsonb``, so a field added to a record
needs no migration. Tables come from the "decisions" migrations.

One promise needed more than the SQLite file gave: ``interrupt_running`` at start marks what was
running when *this* server stopped. Several servers share the table, so a running record names the
server that runs it (``runner``: host name and data folder, the same after a restart), and a server
starting marks only its own: another server's running plan is not reported as interrupted.

:func:`open_decisions` picks the backend from ``database_url``, as ``open_conversation_store`` does.
REST plans (:mod:`.api.plan_store`) and Teams' plan and call cards open their stores through it.
Teams' calls needed a hand-off first, since a card's turn waits for its click in the memory of the
server that asked: the waiting turn stamps its row while it waits (``update_waiting``), a click on
another server records the decision and leaves the call to it, and whichever runs the call takes it
first (``claim``), so it runs once (:mod:`.teams.calls`). An approval waiting in a streamed REST turn
is a row here too (kind ``api.approvals``, :mod:`.api.approvals`): the same hand-off, where only the
waiting turn runs the call. chat-copilot's plans still open their SQLite
file: its waiting turn answers the deciding HTTP request itself, which needs the same hand-off.

A decision (``decide``) and an outcome (``finish``) are also announced with ``NOTIFY`` on
:data:`CHANGED_CHANNEL` ('KIND ID', sent on commit); :class:`DecisionWakes`, started in the server's
lifespan, listens and wakes at once what waits for that row here: a chat-copilot plan's turn (and a
hand-off waiting for its outcome), a streamed REST turn's approval, a Teams call card's turn. Every
waiter keeps its poll, for a notification lost to a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from typing_extensions import LiteralString

from kernel_app.interfaces.server.side_store import MEMORY, Decision, DecisionStore
from kernel_app.providers.postgres import Migration, migrate, open_pool

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

log = logging.getLogger("kernel_app.server")

R = TypeVar("R", bound=Decision)  # as DecisionStore's records

NAMESPACE = "decisions"
MIGRATIONS = (
    Migration(
        1,
        "records waiting for a person's decision (Teams cards, chat-copilot plans)",
        """
        CREATE TABLE pending_decisions (
            kind        text NOT NULL,               -- e.g. 'teams.plans': the store's file and table
            id          text NOT NULL,
            state       text NOT NULL,               -- waiting, approved, done, failed, rejected, expired, ...
            outcome     text NOT NULL DEFAULT '',
            card_id     text,
            runner      text,                        -- the server that approved it and runs it
            fields      jsonb NOT NULL,              -- the rest of the record
            created_at  double precision NOT NULL,   -- epoch seconds, the record's own
            updated_at  double precision NOT NULL,
            PRIMARY KEY (kind, id)
        );
        CREATE INDEX pending_decisions_by_state ON pending_decisions (kind, state, updated_at);
        """,
    ),
)
COLUMNS = ("id", "state", "outcome", "card_id", "created_at")  # record fields kept as columns
# a decision or an outcome written: NOTIFY'd as 'KIND ID' in the writing transaction (so it goes out on
# commit), for turns that wait on another server to look at the row now rather than at their next poll
CHANGED_CHANNEL = "kernel_app_decisions"


def _jsonb(fields: dict[str, Any]) -> Any:
    """``fields`` as a jsonb parameter; as the SQLite store's JSON columns, what json cannot write is
    kept as its str()."""
    from psycopg.types.json import Jsonb

    return Jsonb(fields, dumps=lambda obj: json.dumps(obj, ensure_ascii=False, default=str))


def _migrate(conn: Connection[Any]) -> None:
    migrate(conn, NAMESPACE, MIGRATIONS)


def this_runner(folder: Path | str) -> str:
    """The name a server's running records carry: its host and data folder (unchanged by a restart)."""
    return f"{socket.gethostname()}:{Path(folder).expanduser().resolve()}"


class PgDecisionStore(Generic[R]):
    """``PgDecisionStore(PlanStore, url, runner=...)``: the records of a :class:`DecisionStore` subclass
    (its ``RECORD``, ``INTERRUPTED``, ``KEEP_DECIDED``, ``FORGET_WAITING``) in PostgreSQL.

    Pass ``pool`` to share one connection pool between several kinds (the caller closes it then).
    """

    backend = "postgresql"

    def __init__(
        self,
        spec: type[DecisionStore[R]],
        database_url: str | None = None,
        *,
        runner: str,
        pool: ConnectionPool | None = None,
    ) -> None:
        if pool is None and not database_url:
            raise ValueError("PgDecisionStore needs a database_url or a pool")
        self.spec = spec
        self.kind = f"{Path(spec.DB_NAME).stem}.{spec.TABLE}"
        self.runner = runner
        self._owns_pool = pool is None
        if pool is None:
            assert database_url is not None
            pool = open_pool(database_url, max_size=2, name=f"kernel-app-{self.kind}", setup=_migrate)
        else:
            with pool.connection() as conn:
                conn.autocommit = True  # migrate runs each step as its own transaction
                try:
                    _migrate(conn)
                finally:
                    conn.autocommit = False
        self._pool: ConnectionPool = pool
        self._fields = {f.name for f in dataclasses.fields(spec.RECORD)}

    def add(self, record: R) -> None:
        values = vars(record)
        fields = {name: value for name, value in values.items() if name not in COLUMNS}
        now = time.time()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO pending_decisions (kind, id, state, outcome, card_id, fields, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    self.kind,
                    values["id"],
                    values["state"],
                    values["outcome"],
                    values.get("card_id"),
                    _jsonb(fields),
                    values["created_at"],
                    now,
                ),
            )
            self._prune(conn)

    def get(self, record_id: str) -> R | None:
        rows = self._select("id = %s", (record_id,))
        return rows[0] if rows else None

    def decide(
        self,
        record_id: str,
        state: str,
        outcome: str,
        card_id: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> bool:
        """Move a waiting record to ``state``; False when it was no longer waiting (decided already, here
        or on another server). ``card_id`` (where the record has one) is kept when given; ``changes`` (other
        fields, e.g. a plan's edits) are written by the same conditional update, so only the winner's are."""
        card = card_id if "card_id" in self._fields else None
        with self._pool.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE pending_decisions SET state = %s, outcome = %s, card_id = COALESCE(%s, card_id), "
                "fields = fields || %s, runner = %s, updated_at = %s "
                "WHERE kind = %s AND id = %s AND state = 'waiting'",
                (state, outcome, card, self._changes(changes or {}), self.runner, time.time(), self.kind, record_id),
            )
            if cursor.rowcount != 1:
                return False
            self._announce(conn, record_id)
            return True

    def _announce(self, conn: Connection[Any], record_id: str) -> None:
        """Tell listening servers the record changed (a hint only: a lost one leaves them to their poll)."""
        conn.execute("SELECT pg_notify(%s, %s)", (CHANGED_CHANNEL, f"{self.kind} {record_id}"))

    def _changes(self, changes: dict[str, Any]) -> Any:
        """``changes`` as the jsonb merged into ``fields``; the columns of every record are not changed this way."""
        unknown = sorted(set(changes) - (self._fields - set(COLUMNS)))
        if unknown:
            raise ValueError(f"{self.kind}: cannot change {', '.join(unknown)} this way")
        return _jsonb(changes)

    def having(self, name: str, value: str) -> list[R]:
        """The records whose field ``name`` (kept in ``fields``) is ``value``, oldest first."""
        if name not in self.spec.text_fields() or name in COLUMNS:
            raise ValueError(f"{self.kind}: cannot look records up by {name}")
        return sorted(self._select("fields->>%s = %s", (name, value)), key=lambda r: r.created_at)

    def update_waiting(self, record_id: str, changes: dict[str, Any]) -> bool:
        """Change other fields of a record still waiting (a waiting turn's heartbeat); False when it was
        decided meanwhile, here or on another server (then nothing changes)."""
        with self._pool.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE pending_decisions SET fields = fields || %s WHERE kind = %s AND id = %s AND state = 'waiting'",
                (self._changes(changes), self.kind, record_id),
            )
            return cursor.rowcount == 1

    def update_running(self, record_id: str, changes: dict[str, Any]) -> bool:
        """Change other fields of an approved record while it runs (a plan's steps so far); False when it
        is no longer running, here or on another server (then nothing changes)."""
        with self._pool.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE pending_decisions SET fields = fields || %s, updated_at = %s "
                "WHERE kind = %s AND id = %s AND state = 'approved'",
                (self._changes(changes), time.time(), self.kind, record_id),
            )
            return cursor.rowcount == 1

    def claim(self, record_id: str, runner: str) -> bool:
        """Take an approved record to run it: True for the one caller, of any server, that took it first
        (``taken_by`` in its fields goes from empty to ``runner`` in one conditional UPDATE). The server
        that takes it is its ``runner`` from then on, so its restart is the one that reports it interrupted."""
        if "taken_by" not in self._fields:
            raise TypeError(f"{self.kind}: claim needs a taken_by field in {self.spec.RECORD.__name__}")
        with self._pool.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE pending_decisions SET fields = fields || jsonb_build_object('taken_by', %s::text), "
                "runner = %s, updated_at = %s "
                "WHERE kind = %s AND id = %s AND state = 'approved' AND fields->>'taken_by' = ''",
                (runner, self.runner, time.time(), self.kind, record_id),
            )
            return cursor.rowcount == 1

    def expire_if_late(self, record: Any, timeout: float, outcome: str, card_id: str | None = None) -> bool:
        """A waiting record older than ``timeout`` seconds is ``expired`` (nothing runs); True when it was."""
        if record.state != "waiting" or time.time() - record.created_at <= timeout:
            return False
        self.decide(record.id, "expired", outcome, card_id)
        return True

    def finish(self, record_id: str, state: str, outcome: str, changes: dict[str, Any] | None = None) -> None:
        """What became of an approved record: ``done`` or ``failed`` (once). ``changes``: other fields of
        the record that running it settled, merged into its ``fields`` in the same UPDATE."""
        unknown = sorted(set(changes or {}) - (self._fields - set(COLUMNS)))
        if unknown:
            raise ValueError(f"{self.kind}: finish cannot change {', '.join(unknown)}")
        with self._pool.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE pending_decisions SET state = %s, outcome = %s, fields = fields || %s, updated_at = %s "
                "WHERE kind = %s AND id = %s AND state = 'approved'",
                (state, outcome, _jsonb(changes or {}), time.time(), self.kind, record_id),
            )
            if cursor.rowcount == 1:  # a hand-off waiting on another server answers with the outcome
                self._announce(conn, record_id)

    def interrupt_running(self) -> int:
        """At start: what this server was running when it stopped may not have finished; say so when asked.
        Records another server runs are left alone."""
        running = self._select("state = 'approved' AND runner = %s", (self.runner,))
        with self._pool.connection() as conn, conn.transaction():
            for record in running:
                conn.execute(
                    "UPDATE pending_decisions SET state = 'interrupted', outcome = %s, updated_at = %s "
                    "WHERE kind = %s AND id = %s AND state = 'approved'",
                    (self.spec.INTERRUPTED.format_map(vars(record)), time.time(), self.kind, vars(record)["id"]),
                )
        return len(running)

    def close(self) -> None:
        if self._owns_pool:
            self._pool.close()

    def _select(self, where: LiteralString, parameters: tuple[Any, ...]) -> list[R]:
        # ``where`` is one of this module's own conditions, never built from input
        with self._pool.connection() as conn, conn.transaction():
            rows = conn.execute(
                "SELECT id, state, outcome, card_id, created_at, fields FROM pending_decisions "
                f"WHERE kind = %s AND {where}",
                (self.kind, *parameters),
            ).fetchall()
        return [self._record(row) for row in rows]

    def _record(self, row: tuple[Any, ...]) -> R:
        record_id, state, outcome, card_id, created_at, fields = row
        values: dict[str, Any] = {**fields, "id": record_id, "state": state, "outcome": outcome}
        values["created_at"] = float(created_at)
        if "card_id" in self._fields:
            values["card_id"] = card_id
        return self.spec.RECORD(**{name: value for name, value in values.items() if name in self._fields})

    def _prune(self, conn: Connection[Any]) -> None:
        conn.execute(
            "DELETE FROM pending_decisions WHERE kind = %s AND state != 'waiting' AND id NOT IN "
            "(SELECT id FROM pending_decisions WHERE kind = %s AND state != 'waiting' "
            "ORDER BY updated_at DESC LIMIT %s)",
            (self.kind, self.kind, self.spec.KEEP_DECIDED),
        )
        conn.execute(
            "DELETE FROM pending_decisions WHERE kind = %s AND state = 'waiting' AND created_at < %s",
            (self.kind, time.time() - self.spec.FORGET_WAITING),
        )


def open_decisions(
    spec: type[DecisionStore[R]], store_path: Path | str, database_url: str | None = None
) -> DecisionStore[R] | PgDecisionStore[R]:
    """``spec``'s records: in PostgreSQL when ``database_url`` is set, else in its SQLite file beside the
    conversation store at ``store_path`` (``spec.beside(store_path)``, exactly as before)."""
    if database_url:
        folder = Path(store_path).parent if str(store_path) != MEMORY else Path.cwd()
        return PgDecisionStore(spec, database_url, runner=this_runner(folder))
    return spec.beside(store_path)


class DecisionWakes:
    """Wakes this server's turns that wait for a row another server decided or finished.

    One LISTEN on :data:`CHANGED_CHANNEL` over a connection of its own (a pooled one is handed to others
    and would drop the LISTEN), reconnecting with backoff. A hint only: every waiter keeps its poll, so
    a notification lost while the connection was down costs one poll, never a hung approval.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Listen in the background (the server's lifespan, on its event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listening())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    def wake(self, kind: str, record_id: str) -> None:
        event = self._events.get((kind, record_id))
        if event is not None:
            event.set()

    async def nap(self, kind: str, record_id: str, seconds: float, *also: asyncio.Future[Any]) -> None:
        """Sleep up to ``seconds``, less when the row changes or one of ``also`` is done."""
        event = self._events.setdefault((kind, record_id), asyncio.Event())
        woken = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({woken, *also}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            event.clear()  # a change from now on wakes the next nap: the row is read after this one

    def forget(self, kind: str, record_id: str) -> None:
        self._events.pop((kind, record_id), None)

    async def _listening(self) -> None:
        import psycopg

        backoff = 0.25
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.database_url, autocommit=True, application_name="kernel-app-decisions", connect_timeout=10
                ) as conn:
                    await conn.execute(f"LISTEN {CHANGED_CHANNEL}")
                    backoff = 0.25
                    while True:
                        async for note in conn.notifies(timeout=10.0):
                            kind, _, record_id = note.payload.partition(" ")
                            self.wake(kind, record_id)
                        await conn.execute("SELECT 1")  # quiet for a while: is the connection still there?
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("decisions: listening for other servers' decisions stopped (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
