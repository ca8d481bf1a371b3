"""Errors of the PostgreSQL layer: one line each, saying what to do."""

from __future__ import annotations

from kernel_app.base.errors import ConfigError, KernelAppError


class DatabaseError(KernelAppError):
    """Base class of every error raised by ``kernel_app.providers.postgres``."""


class DatabaseUnavailableError(DatabaseError):
    """The server could not be reached or refused the connection."""


class VectorExtensionError(DatabaseError, ConfigError):
    """pgvector is missing from the database and this user may not (or cannot) create it."""


class SchemaTooNewError(DatabaseError, ConfigError):
    """The database was upgraded by a newer Kernel App than this one."""

    def __init__(self, namespace: str, found: int, known: int) -> None:
        self.namespace, self.found, self.known = namespace, found, known
        super().__init__(
            f"the database's '{namespace}' tables are at schema version {found} but this Kernel App knows "
            f"only up to {known}: upgrade kernel-app (a newer version wrote them), or point database_url "
            "at another database"
        )
