"""Versioned schema migrations, one name space per store ("memory", later "conversations", ...).

The table ``kernel_app_schema`` holds each name space's version. Each upgrade step runs in one
transaction that first takes a transaction-scoped advisory lock, so servers starting together
apply every step exactly once (the others wait, then see the new version and skip it); a failing
step leaves the version where it was. A database at a newer version than the program knows is
refused with a one-line error instead of being used half-understood.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from typing_extensions import LiteralString

from kernel_app.providers.postgres.errors import SchemaTooNewError

if TYPE_CHECKING:
    from psycopg import Connection

VERSION_TABLE = "kernel_app_schema"
# pg_advisory_xact_lock key for every migration of every name space (one lock: steps are rare and short).
MIGRATION_LOCK = 0x4B41_4D49_4752  # "KAMIGR"


@dataclass(frozen=True)
class Migration:
    """One upgrade step of a name space: ``sql`` (one or more statements) or a function of the connection."""

    version: int
    description: str
    apply: LiteralString | Callable[[Connection[Any]], None]  # SQL text is the program's own, never built


def _check_steps(namespace: str, migrations: Sequence[Migration]) -> list[Migration]:
    steps = sorted(migrations, key=lambda m: m.version)
    if [m.version for m in steps] != list(range(1, len(steps) + 1)):
        raise ValueError(f"migrations of '{namespace}' must be numbered 1, 2, 3... without gaps")
    return steps


def _ensure_version_table(conn: Connection[Any]) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
        "namespace text PRIMARY KEY, version integer NOT NULL, description text NOT NULL DEFAULT '', "
        "updated_at timestamptz NOT NULL DEFAULT now())"
    )


def schema_version(conn: Connection[Any], namespace: str) -> int:
    """The name space's version in the database; 0 when it has none yet."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,)).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute(f"SELECT version FROM {VERSION_TABLE} WHERE namespace = %s", (namespace,)).fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Connection[Any], namespace: str, migrations: Sequence[Migration]) -> int:
    """Bring ``namespace`` up to its last migration; returns the version reached.

    ``conn`` should be in autocommit mode (each step is its own transaction). Raises
    :class:`SchemaTooNewError` if the database is ahead of ``migrations``.
    """
    steps = _check_steps(namespace, migrations)
    known = len(steps)
    current = schema_version(conn, namespace)  # a lock-free look first: the common case has nothing to do
    if current > known:
        raise SchemaTooNewError(namespace, current, known)
    if current == known:
        return current
    for step in steps:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            _ensure_version_table(conn)
            current = schema_version(conn, namespace)
            if current > known:
                raise SchemaTooNewError(namespace, current, known)
            if current >= step.version:
                continue  # applied by another starter meanwhile
            if callable(step.apply):
                step.apply(conn)
            else:
                conn.execute(step.apply)
            conn.execute(
                f"INSERT INTO {VERSION_TABLE} (namespace, version, description) VALUES (%s, %s, %s) "
                "ON CONFLICT (namespace) DO UPDATE SET version = excluded.version, "
                "description = excluded.description, updated_at = now()",
                (namespace, step.version, step.description),
            )
    return known
