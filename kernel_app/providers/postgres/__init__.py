"""PostgreSQL + pgvector: the shared store behind the ``database_url`` setting (issue 19).

``open_pool`` gives a psycopg connection pool whose connections know the ``vector`` type;
``migrate`` brings one store's tables (its name space, e.g. "memory") to the version the program
knows. psycopg is imported on first use only: without ``database_url`` nothing here loads.
"""

from __future__ import annotations

from kernel_app.providers.postgres.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    SchemaTooNewError,
    VectorExtensionError,
)
from kernel_app.providers.postgres.migrations import Migration, migrate, schema_version
from kernel_app.providers.postgres.pool import describe_url, ensure_vector_extension, open_pool, transaction

__all__ = [
    "DatabaseError",
    "DatabaseUnavailableError",
    "Migration",
    "SchemaTooNewError",
    "VectorExtensionError",
    "describe_url",
    "ensure_vector_extension",
    "migrate",
    "open_pool",
    "schema_version",
    "transaction",
]
