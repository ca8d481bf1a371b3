"""The eval output cache on PostgreSQL (where ``database_url`` is set): one cache for every instance.

The same keys as the SQLite file (:func:`kernel_app.kernel.evals.cache.cache_key`: rendered prompt or
plugin folder, settings, model, repeat, version), so a server with a ``database_url`` and its workers
share outputs, and ``POST /v1/evals`` on one instance reuses what another produced. Built on
``kernel_app.providers.postgres`` (the pool; the "eval_cache" migrations, versioned like the other stores').
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import UsageError
from kernel_app.base.usage import Usage
from kernel_app.kernel.evals.assertions import Output
from kernel_app.providers.postgres import Migration, describe_url, migrate, open_pool, transaction

if TYPE_CHECKING:
    from psycopg import Connection

NAMESPACE = "eval_cache"
MIGRATIONS = (
    Migration(
        1,
        "eval outputs by key: function, model, text, latency and tokens of the run that produced them",
        """
        CREATE TABLE eval_outputs (
            key        text PRIMARY KEY,
            function   text NOT NULL,
            model      text NOT NULL,
            text       text NOT NULL,
            latency_s  double precision NOT NULL,
            usage      jsonb NOT NULL,            -- base.usage.Usage's fields
            created_at double precision NOT NULL  -- epoch seconds, the writing instance's clock
        );
        CREATE INDEX eval_outputs_by_function ON eval_outputs (function, model);
        """,
    ),
)


def _migrate(conn: Connection[Any]) -> None:
    migrate(conn, NAMESPACE, MIGRATIONS)


class PgOutputCache:
    """Outputs by key in the ``eval_outputs`` table; safe to share between processes and machines."""

    def __init__(self, database_url: str) -> None:
        self.where = f"PostgreSQL at {describe_url(database_url)}"
        self._pool = open_pool(database_url, min_size=1, max_size=2, name="kernel-app-eval-cache", setup=_migrate)

    def get(self, key: str) -> Output | None:
        import psycopg

        try:
            with self._pool.connection() as conn:
                row = conn.execute("SELECT text, latency_s, usage FROM eval_outputs WHERE key = %s", (key,)).fetchone()
        except psycopg.Error as error:
            raise self._unusable(error) from error
        if row is None:
            return None
        text, latency_s, usage = row
        return Output(text, float(latency_s), Usage(**usage))

    def put(self, key: str, function: str, model: str, output: Output) -> None:
        import psycopg

        usage = json.dumps(dataclasses.asdict(output.usage))
        try:
            with transaction(self._pool) as conn:  # the last writer of a key wins, as in the SQLite file
                conn.execute(
                    "INSERT INTO eval_outputs (key, function, model, text, latency_s, usage, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                    "function = excluded.function, model = excluded.model, text = excluded.text, "
                    "latency_s = excluded.latency_s, usage = excluded.usage, created_at = excluded.created_at",
                    (key, function, model, output.text, output.latency_s, usage, time.time()),
                )
        except psycopg.Error as error:
            raise self._unusable(error) from error

    def close(self) -> None:
        self._pool.close()

    def _unusable(self, error: Exception) -> UsageError:
        reason = " ".join(str(error).split()) or type(error).__name__
        return UsageError(
            f"the eval cache on {self.where} cannot be used ({reason}): check database_url or pass --no-cache"
        )
