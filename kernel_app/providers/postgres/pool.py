"""Connections: a psycopg pool whose connections adapt numpy arrays to pgvector's ``vector``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import DependencyMissingError
from kernel_app.providers.postgres.errors import DatabaseUnavailableError, VectorExtensionError

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
# How long a request waits for a pooled connection before it fails (a 503 in the server): short, so that
# while the database is away requests fail fast instead of piling up behind the pool.
CHECKOUT_TIMEOUT_S = 3.0
# How long psycopg_pool keeps retrying one lost connection before it gives that attempt up. Its retries back
# off exponentially (1, 2, 4, 8... s: not configurable in psycopg_pool 3.3), so after a long outage the next
# attempt could come many seconds after the database was back, and every request meanwhile a 503. Given up
# after a second, a lost connection is not retried on a timer any more: the next request that finds the
# pool empty starts a new attempt at once (the pool grows on demand up to its max_size), so service resumes
# within about a second of the database's return (tests/interfaces/server/test_database_outage.py).
RECONNECT_S = 1.0
MIN_PGVECTOR = (0, 8)
CREATE_VECTOR_HINT = "run `CREATE EXTENSION vector;` once in that database as a superuser (or its owner, if allowed)"


def describe_url(url: str) -> str:
    """``user@host:port/dbname`` of a libpq URL, without its password (for messages and stats)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # a URL libpq cannot parse: say so without echoing it
        return "an unparsable database_url"
    user = str(parts.get("user") or "")
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"{user + '@' if user else ''}{host}{port}/{parts.get('dbname') or user or ''}"


def require_client() -> None:
    """A one-line error when database_url is set but the ``postgres`` extra is not installed."""
    try:
        import pgvector.psycopg  # noqa: F401
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise DependencyMissingError(
            f"database_url needs the PostgreSQL client packages ({exc.name} is missing): "
            "pip install 'kernel-app[postgres]'"
        ) from None


def connect(url: str, **kwargs: Any) -> Connection[Any]:
    """One connection, or a one-line :class:`DatabaseUnavailableError` naming the server."""
    require_client()
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S), **kwargs)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {describe_url(url)}: {reason}: check database_url "
            "(--database-url / KERNEL_APP_DATABASE_URL) and that the server is running"
        ) from None


def ensure_vector_extension(conn: Connection[Any]) -> None:
    """Create pgvector in the database if it is missing; a one-line error if this user may not, or if the
    installed one is older than 0.8."""
    from psycopg import errors

    where = f"PostgreSQL database {conn.info.dbname!r} on {conn.info.host}"
    installed = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if installed:
        check_pgvector_version(installed[0], where)
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except errors.InsufficientPrivilege:
        raise VectorExtensionError(
            f"{where} has no 'vector' extension and user {conn.info.user!r} may not create it: {CREATE_VECTOR_HINT}"
        ) from None
    except (errors.UndefinedFile, errors.FeatureNotSupported, errors.ObjectNotInPrerequisiteState) as exc:
        raise VectorExtensionError(
            f"{where}: pgvector is not installed on the server ({str(exc).splitlines()[0]}): install pgvector "
            ">= 0.8 (managed services such as Azure Database for PostgreSQL offer it), then "
            f"{CREATE_VECTOR_HINT}"
        ) from None
    except errors.UniqueViolation:  # another process created it at the same moment
        pass


def check_pgvector_version(version: str, where: str = "the database") -> None:
    """pgvector 0.8 brought iterative index scans, which filtered searches rely on: older is a one-line error."""
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return  # a build with an unusual version string: let it run
    if found < MIN_PGVECTOR:
        wanted = ".".join(map(str, MIN_PGVECTOR))
        raise VectorExtensionError(
            f"{where} has pgvector {version}, older than {wanted} (needed for filtered searches): install "
            f"pgvector >= {wanted} on the server, then run `ALTER EXTENSION vector UPDATE;` in the database"
        )


def _register_vector(conn: Connection[Any]) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)
    conn.commit()  # register_vector's type lookup opened a transaction; a pooled connection must be idle


def check_if_readable(conn: Connection[Any]) -> None:
    """The pool's check of a connection it is about to hand out: a round trip only when the server sent
    something while the connection sat idle in the pool.

    An idle connection receives nothing unless its server process ended (a restart, a terminated
    backend: an error message and the socket's end), so a readable socket is the sign to look closer
    with ``ConnectionPool.check_connection`` (an empty query, which raises on a dead connection and the
    pool then replaces it). Checking every connection that way cost a round trip per checkout, five per
    conversation turn, each a wait of the server's event loop and a wake-up of a PostgreSQL backend.
    """
    from psycopg_pool import ConnectionPool

    if conn.closed or conn.broken or _readable(conn.fileno()):
        ConnectionPool.check_connection(conn)  # raises on a dead connection: the pool replaces it


def _readable(fd: int) -> bool:
    """Whether ``fd`` has something to read (or hung up), without waiting. poll, not select, where there is
    one: select fails on descriptors past 1023, which a busy server's sockets and files may reach."""
    import select

    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))  # POLLHUP and POLLERR are reported even when not asked for
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def open_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    name: str = "kernel-app",
    setup: Callable[[Connection[Any]], None] | None = None,
    autocommit: bool = False,
    session: dict[str, str] | None = None,
) -> ConnectionPool:
    """A pool on ``url`` whose connections adapt numpy arrays to ``vector`` (pgvector is created first).

    ``setup`` runs once on an autocommit connection before the pool opens (a store's migrations).
    ``autocommit``: the pool's connections are in autocommit mode (each statement its own transaction).
    ``session``: server settings every connection starts with (``{"synchronous_commit": "off"}``).
    Fails at once, with a one-line error, if the server cannot be reached or pgvector is unavailable,
    rather than on the first query.
    """
    require_client()
    from psycopg_pool import ConnectionPool, PoolTimeout

    with connect(url, autocommit=True) as conn:
        ensure_vector_extension(conn)
        if setup is not None:
            setup(conn)
    from psycopg import Connection

    options = {"options": " ".join(f"-c {key}={value}" for key, value in session.items())} if session else {}
    pool = ConnectionPool(
        url,
        connection_class=Connection,  # named, so the pool's type says which connections it hands out
        min_size=min_size,
        max_size=max_size,
        name=name,
        configure=_register_vector,
        kwargs={"connect_timeout": int(CONNECT_TIMEOUT_S), "autocommit": autocommit, **options},
        # A connection the server closed while it sat idle (the database restarted) is found out before it
        # is handed out, not by the request that gets it. One that breaks mid-request is not OK when it
        # comes back, and the pool discards it (psycopg_pool's _return_connection checks its status).
        check=check_if_readable,
        timeout=CHECKOUT_TIMEOUT_S,
        reconnect_timeout=RECONNECT_S,
        open=False,
    )
    pool.open()
    try:
        pool.wait(timeout=CONNECT_TIMEOUT_S)
    except PoolTimeout:
        pool.close()
        raise DatabaseUnavailableError(
            f"no connection to PostgreSQL at {describe_url(url)} within {CONNECT_TIMEOUT_S:.0f} s: "
            "check that the server is running and accepts this many connections"
        ) from None
    return pool


@contextmanager
def transaction(pool: ConnectionPool) -> Iterator[Connection[Any]]:
    """One transaction on a connection of ``pool``: committed when the block ends (before the caller hears
    of it), else rolled back; the connection goes back to the pool either way."""
    with pool.connection() as conn, conn.transaction():
        yield conn
