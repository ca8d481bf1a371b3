"""The hub's backplane on PostgreSQL: what one instance's hub sends reaches clients connected to another.

SignalR scales out the same way (a backplane every server publishes to and listens on). Each hub send
is written as a row of ``copilot_hub_messages`` (its own "copilot_hub" migrations) and announced with
``NOTIFY kernel_app_copilot_hub, 'ORIGIN LAST_ID'``: a reference, never the message itself, since NOTIFY's
payload stops at 8000 bytes and a reply with citations can be longer. Every other instance, LISTENing
on a connection of its own (not from a pool: a pooled connection is handed to others and would drop
the LISTEN), reads the rows it has not delivered yet and sends them to its own clients in the chat's
group. The instance that sent a message skips its own rows (its clients had it already): no client
gets a message twice.

Order: each instance publishes from one task over one connection, so its rows commit in id order (what
queued up meanwhile, such as a streamed reply's updates, goes in one transaction with one NOTIFY of its
last id); a receiver keeps the last id it delivered per origin and reads ``id > last`` in order.

Loss: after the listening connection drops (a database restart), it reconnects with backoff and first
reads what the others wrote meanwhile (what was written before an instance first listened is not for
it). Rows are pruned after :data:`KEEP_SECONDS`; a send while the database is unreachable is dropped
for the other instances (logged), never delaying this instance's own clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from typing_extensions import LiteralString

from kernel_app.providers.postgres import Migration, describe_url, migrate

if TYPE_CHECKING:
    from psycopg import AsyncConnection, Connection

log = logging.getLogger("kernel_app.copilot")

CHANNEL = "kernel_app_copilot_hub"
NAMESPACE = "copilot_hub"
MIGRATIONS = (
    Migration(
        1,
        "chat-copilot hub messages relayed between instances (LISTEN/NOTIFY carries their ids)",
        """
        CREATE TABLE copilot_hub_messages (
            id         bigserial PRIMARY KEY,
            origin     text NOT NULL,               -- the instance whose hub sent it
            chat_id    text NOT NULL,               -- the group it goes to
            message    text NOT NULL,               -- the SignalR invocation, as JSON
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX copilot_hub_messages_by_origin ON copilot_hub_messages (origin, id);
        CREATE INDEX copilot_hub_messages_by_age ON copilot_hub_messages (created_at);
        """,
    ),
)
KEEP_SECONDS = 300  # a row outlives any reconnect worth catching up on
PRUNE_EVERY = 200  # messages published between prunes
BATCH = 100  # messages at most in one transaction and one NOTIFY
HEALTH_CHECK_S = 10.0  # a silent listener checks its connection (and catches up) this often
MAX_BACKOFF_S = 5.0
CONNECT_TIMEOUT_S = 10  # seconds: an unreachable database fails a connect rather than hanging it
LISTENER_NAME = "kernel-app-hub-listener"  # application_name: what a DBA sees in pg_stat_activity

Deliver = Callable[[str, dict[str, Any]], Awaitable[int]]


def _migrate(conn: Connection[Any]) -> None:
    migrate(conn, NAMESPACE, MIGRATIONS)


class Backplane:
    """``Backplane(url, deliver)``; :meth:`start` in the server's lifespan, then :meth:`publish` each send.

    ``deliver(chat_id, message)`` sends a message that came from another instance to this one's clients.
    """

    def __init__(self, database_url: str, deliver: Deliver) -> None:
        self.database_url = database_url
        self.origin = uuid.uuid4().hex
        self._deliver = deliver
        self._last: dict[str, int] = {}  # origin -> the last id delivered here
        self._start_id: int | None = None  # the last id written before this instance first listened
        self._outbox: asyncio.Queue[tuple[str, str] | None] | None = None
        self._db: AsyncConnection[Any] | None = None  # writes and reads; the listener has its own
        self._db_lock: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._published = 0
        self.listening: asyncio.Event | None = None  # set while the LISTEN is in place (tests wait on it)
        self.connects = 0  # how many times the listener connected (a reconnect makes it 2...)

    def __repr__(self) -> str:
        return f"Backplane({describe_url(self.database_url)!r})"

    async def start(self) -> None:
        """Migrate, then listen and publish in the background. Fails at once if the database is unreachable."""
        from kernel_app.providers.postgres.pool import connect, require_client

        require_client()

        def prepare() -> None:
            with connect(self.database_url, autocommit=True) as conn:
                _migrate(conn)

        await asyncio.to_thread(prepare)
        self._outbox = asyncio.Queue()
        self._db_lock = asyncio.Lock()
        self.listening = asyncio.Event()
        self._tasks = [asyncio.create_task(self._publishing()), asyncio.create_task(self._listening())]

    async def stop(self) -> None:
        """Send what is queued (briefly), then close both connections."""
        if self._outbox is not None and self._tasks:
            self._outbox.put_nowait(None)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[0]), 5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._db.close()
            self._db = None

    def publish(self, chat_id: str, message: dict[str, Any]) -> None:
        """Queue a message this instance's hub sent, for the other instances (in order; never blocks)."""
        if self._outbox is not None:
            self._outbox.put_nowait((chat_id, json.dumps(message, ensure_ascii=False)))

    # region publishing

    async def _connection(self) -> AsyncConnection[Any]:
        import psycopg

        if self._db is None or self._db.closed or self._db.broken:
            self._db = await psycopg.AsyncConnection.connect(
                self.database_url, autocommit=True, application_name="kernel-app-hub", connect_timeout=CONNECT_TIMEOUT_S
            )
        return self._db

    async def _publishing(self) -> None:
        assert self._outbox is not None
        stopping = False
        while not stopping:
            first = await self._outbox.get()
            if first is None:
                return
            batch = [first]  # what queued up meanwhile goes in the same transaction (a streamed reply's updates)
            while len(batch) < BATCH and not self._outbox.empty():
                item = self._outbox.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            for attempt in (1, 2):  # a dropped connection (a database restart) is reopened once
                try:
                    await self._write(batch)
                    break
                except Exception as exc:  # lost to the other instances: say so, go on
                    self._db = None
                    if attempt == 2:
                        log.warning(
                            "chat-copilot backplane: %d hub message(s) not relayed: %s", len(batch), _one_line(exc)
                        )

    async def _write(self, batch: list[tuple[str, str]]) -> None:
        assert self._db_lock is not None
        async with self._db_lock:
            conn = await self._connection()
            async with conn.transaction():  # the NOTIFY goes out when the rows are committed, not before
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        "INSERT INTO copilot_hub_messages (origin, chat_id, message) VALUES (%s, %s, %s)",
                        [(self.origin, chat_id, message) for chat_id, message in batch],
                    )
                    await cursor.execute("SELECT currval(pg_get_serial_sequence('copilot_hub_messages', 'id'))")
                    row = await cursor.fetchone()
                assert row is not None
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{self.origin} {row[0]}"))
            before = self._published
            self._published += len(batch)
            if self._published // PRUNE_EVERY != before // PRUNE_EVERY:
                await conn.execute(
                    "DELETE FROM copilot_hub_messages WHERE created_at < now() - make_interval(secs => %s)",
                    (KEEP_SECONDS,),
                )

    # endregion

    # region listening

    async def _listening(self) -> None:
        import psycopg

        assert self.listening is not None
        backoff = 0.25
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.database_url,
                    autocommit=True,
                    application_name=LISTENER_NAME,
                    connect_timeout=CONNECT_TIMEOUT_S,
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self._start_id is None:  # what was sent before this instance listened is not its
                        self._start_id = await self._max_id()
                    self.connects += 1
                    self.listening.set()
                    backoff = 0.25
                    await self._catch_up()  # what was written while this was not listening
                    while True:
                        async for note in conn.notifies(timeout=HEALTH_CHECK_S):
                            origin, _, last = note.payload.partition(" ")
                            if origin != self.origin and last.isdigit():
                                await self._receive(origin, int(last))
                        await conn.execute("SELECT 1")  # quiet for a while: is the connection still there?
                        await self._catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("chat-copilot backplane: listening stopped (%s); reconnecting", _one_line(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _receive(self, origin: str, up_to: int) -> None:
        """Deliver ``origin``'s rows after the last one delivered here, through ``up_to``."""
        after = self._last.get(origin, self._start_id or 0)
        if up_to <= after:
            return  # delivered already, by a catch-up
        await self._deliver_rows(
            "SELECT id, origin, chat_id, message FROM copilot_hub_messages "
            "WHERE origin = %s AND id > %s AND id <= %s ORDER BY id",
            (origin, after, up_to),
        )

    async def _catch_up(self) -> None:
        """Every other origin's rows written since this instance started listening and not delivered here."""
        assert self._db_lock is not None
        start = self._start_id or 0
        async with self._db_lock:
            try:
                cursor = await (await self._connection()).execute(
                    "SELECT DISTINCT origin FROM copilot_hub_messages WHERE id > %s AND origin <> %s",
                    (start, self.origin),
                )
                origins = [row[0] for row in await cursor.fetchall()]
            except Exception:
                self._db = None
                raise
        for origin in origins:
            await self._deliver_rows(
                "SELECT id, origin, chat_id, message FROM copilot_hub_messages WHERE origin = %s AND id > %s "
                "ORDER BY id",
                (origin, self._last.get(origin, start)),
            )

    async def _max_id(self) -> int:
        assert self._db_lock is not None
        async with self._db_lock:
            try:
                cursor = await (await self._connection()).execute("SELECT max(id) FROM copilot_hub_messages")
                row = await cursor.fetchone()
            except Exception:
                self._db = None
                raise
        return int(row[0]) if row and row[0] is not None else 0

    async def _deliver_rows(self, query: LiteralString, parameters: tuple[Any, ...]) -> None:
        assert self._db_lock is not None
        async with self._db_lock:
            try:
                cursor = await (await self._connection()).execute(query, parameters)
                rows = await cursor.fetchall()
            except Exception:
                self._db = None
                raise
        for row_id, origin, chat_id, message in rows:
            self._last[origin] = max(self._last.get(origin, 0), row_id)
            try:
                await self._deliver(chat_id, json.loads(message))
            except Exception as exc:  # one client's trouble must not stop the relay
                log.warning("chat-copilot backplane: a relayed message was not delivered: %s", _one_line(exc))

    # endregion


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
