"""PgMemoryStore: the memory store on PostgreSQL + pgvector, for servers that share one database.

Same public API and promises as :class:`memories.store.MemoryStore` (docs/memory.md), different
engine: records live in ``memory_records`` (a ``vector`` column, jsonb metadata), partitioned by
collection (one partition each), collections in ``memory_collections``. Each partition has a partial
HNSW index (cosine) over ``embedding::vector(dimensions)`` WHERE the row is of the collection's
current generation (its uid, renewed by a re-embed), so collections of different embedders share
one table, and building or dropping one collection's index never scans or locks another's rows. A
filtered search runs the filter inside the query, before the top-k: pgvector 0.8's iterative index
scan keeps walking the graph until enough rows pass the filter, and a top-k that still comes back
short is redone as an exact scan. Tables are created and upgraded by the "memory" migrations.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import logging
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from typing_extensions import LiteralString

from kernel_app.providers.postgres import Migration, describe_url, migrate, open_pool
from memories.db import default_store_dir
from memories.embedders import Embedder, default_embedder, normalize_rows
from memories.errors import CollectionNotFoundError, MemoryUsageError
from memories.mmr import mmr_order
from memories.pg_where import compile_where_pg
from memories.records import CollectionInfo, MemoryRecord, Metadata, SearchHit
from memories.store_base import (
    MMR_POOL_FACTOR,
    Pending,
    StoreBase,
    check_collection_name,
    check_embedder,
    check_id,
    check_mmr,
    embed_texts,
)
from memories.uploads import remove_uploads, upload_folder

if TYPE_CHECKING:
    from psycopg import Connection

log = logging.getLogger(__name__)

NAMESPACE = "memory"
MIGRATIONS = (
    Migration(
        1,
        "memory collections and records with pgvector embeddings",
        """
        CREATE TABLE memory_collections (
            name        text PRIMARY KEY,
            uid         text NOT NULL,          -- changes on re-embed: names the collection's HNSW index
            embedder    text NOT NULL,
            dimensions  integer NOT NULL,
            created_at  timestamptz NOT NULL,
            partition   text NOT NULL UNIQUE    -- the collection's partition of memory_records
        );
        -- One partition per collection: its index is built from its own rows only, a drop is a DROP TABLE.
        CREATE TABLE memory_records (
            collection  text NOT NULL REFERENCES memory_collections (name) ON DELETE CASCADE,
            id          text COLLATE "C" NOT NULL,   -- byte order, as SQLite's list() orders ids
            text        text NOT NULL,
            description text NOT NULL DEFAULT '',
            metadata    jsonb NOT NULL DEFAULT '{}',
            embedding   vector NOT NULL,             -- L2-normalised; its collection's dimensions
            generation  text NOT NULL,               -- the collection's uid when the vector was written
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (collection, id)
        ) PARTITION BY LIST (collection);
        """,
    ),
    Migration(
        2,
        "uploaded documents' bytes, dropped with their collection",
        # First created by the REST API's own "uploads" name space (version 1), hence IF NOT EXISTS; the
        # memory store owns it now, so that dropping a collection deletes its uploads in the same
        # transaction. bytea, not a large object: replacing or deleting the row frees the bytes.
        """
        CREATE TABLE IF NOT EXISTS memory_uploads (
            collection  text NOT NULL,          -- the collection's upload folder (memories.uploads)
            name        text NOT NULL,
            size        bigint NOT NULL,
            content     bytea NOT NULL,
            uploaded_at double precision NOT NULL,
            PRIMARY KEY (collection, name)
        );
        """,
    ),
    Migration(3, "uploads' chunks named uploads/COLLECTION/NAME, not by a server's path", lambda c: _rekey_uploads(c)),
)
# pgvector's HNSW indexes `vector` up to 2 000 dimensions; a wider collection is searched exactly.
HNSW_MAX_DIMENSIONS = 2000
HNSW_OPCLASS = "vector_cosine_ops"
DEFAULT_EF_SEARCH = 40  # pgvector's default; raised to the pool size of each search
MAX_EF_SEARCH = 1000  # pgvector's upper bound
RECORD_COLUMNS: Final[LiteralString] = "id, text, description, metadata, created_at, updated_at"
# A batch this big goes through COPY into a temporary table and one INSERT ... SELECT (an upsert),
# instead of one INSERT per row; below it the round trip of the temporary table costs more than it saves.
BULK_MIN_RECORDS = 500
# pg_advisory_xact_lock key taken by whoever creates a collection (the migrations use another key).
CREATE_COLLECTION_LOCK = 0x6B61_6D63  # "kamc"
# For that build only (SET LOCAL): pgvector builds the graph in memory while it fits, much faster.
BULK_INDEX_BUILD_MEMORY = "512MB"
UPSERT_SET: Final[LiteralString] = (
    "ON CONFLICT (collection, id) DO UPDATE SET text = excluded.text, "
    "description = excluded.description, metadata = excluded.metadata, "
    "embedding = excluded.embedding, generation = excluded.generation, "
    "updated_at = excluded.updated_at"
)
# save_many(keep_times=True): the record's own creation time replaces the one stored (as the local store's).
UPSERT_SET_KEEPING_TIMES: Final[LiteralString] = UPSERT_SET + ", created_at = excluded.created_at"


@dataclasses.dataclass(frozen=True)
class _Collection:
    name: str
    uid: str
    embedder: str
    dimensions: int
    created_at: datetime
    partition: str

    @property
    def index_name(self) -> str:
        return f"memory_hnsw_{self.uid}"

    @property
    def indexed(self) -> bool:
        return self.dimensions <= HNSW_MAX_DIMENSIONS


class PgMemoryStore(StoreBase):
    """Collections in a PostgreSQL database with pgvector. Safe to share between threads, processes
    and machines.

    ``database_url`` is a libpq URL (``postgresql://user@host/db``; the password may come from
    PGPASSWORD or ~/.pgpass). ``path`` is the local folder for what stays per instance (uploaded
    files kept for ingestion); it defaults to the local store's folder. ``ef_search`` is HNSW's
    candidate list size (pgvector's ``hnsw.ef_search``; each search uses at least its pool size).
    """

    backend = "postgresql"

    def __init__(
        self,
        database_url: str,
        embedder: Embedder | None = None,
        *,
        path: Path | str | None = None,
        ef_search: int | None = None,
        pool_size: int = 4,
    ) -> None:
        self.database_url = database_url
        self.path = Path(path).expanduser() if path is not None else default_store_dir()
        self.embedder: Embedder = embedder if embedder is not None else default_embedder()
        self.ef_search = int(ef_search or DEFAULT_EF_SEARCH)
        self.pool = open_pool(database_url, max_size=pool_size, name="kernel-app-memory", setup=self._migrate)

    @staticmethod
    def _migrate(conn: Connection[Any]) -> None:
        migrate(conn, NAMESPACE, MIGRATIONS)

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self.pool.close()

    def __repr__(self) -> str:
        return f"PgMemoryStore({describe_url(self.database_url)!r}, embedder={self.embedder.name!r})"

    # --- writing -----------------------------------------------------------------------------

    def save_many(
        self,
        collection: str,
        items: Iterable[Mapping[str, Any] | MemoryRecord | str],
        *,
        replacing: Iterable[str] = (),
        keep_times: bool = False,
    ) -> builtins.list[str]:
        """Store many records in one transaction (upsert by id); returns their ids in order.

        Items, ``replacing`` and ``keep_times`` as in :meth:`memories.store.MemoryStore.save_many`.
        """

        name = check_collection_name(collection)
        pending = [self._pending(item, keep_times) for item in items]
        replacing = [check_id(i) for i in ([replacing] if isinstance(replacing, str) else replacing)]
        if not pending and not replacing:
            return []
        with self.pool.connection() as conn:
            known = self._find(conn, name)
        if known is not None:
            check_embedder(known, self.embedder)
        self._embed(pending)  # outside the transaction: embedding is the slow part
        now = datetime.now(timezone.utc)
        if known is None:
            # A transaction of its own: creating the partition locks memory_records exclusively, which
            # must not last as long as writing a big first batch.
            with self.pool.connection() as conn, conn.transaction():
                if self._find(conn, name, lock="SHARE") is None:
                    self._create(conn, name, now)
        with self.pool.connection() as conn, conn.transaction():
            current = self._find(conn, name, lock="SHARE") or self._create(conn, name, now)  # dropped meanwhile
            check_embedder(current, self.embedder)
            saved = {p.id for p in pending}
            stale = [i for i in dict.fromkeys(replacing) if i not in saved]
            if stale:
                conn.execute("DELETE FROM memory_records WHERE collection = %s AND id = ANY(%s)", (name, stale))
            if len(pending) >= BULK_MIN_RECORDS:
                _bulk_upsert(conn, current, pending, now, keep_times)
            else:
                _row_upsert(conn, current, pending, now, keep_times)
        return [p.id for p in pending]

    def _create(self, conn: Connection[Any], name: str, now: datetime) -> _Collection:
        from psycopg import sql

        # Creators take turns. A partition of memory_records carries its foreign key to memory_collections,
        # so CREATE TABLE ... PARTITION OF locks memory_collections (SHARE ROW EXCLUSIVE) while a second
        # creator's INSERT below holds ROW EXCLUSIVE there and waits for the first one's row: a deadlock
        # that PostgreSQL breaks by failing one of them. The lock is released at the transaction's end.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_COLLECTION_LOCK,))
        uid = uuid.uuid4().hex
        created = _Collection(
            name, uid, self.embedder.name, int(self.embedder.dimensions), now, f"memory_records_{uid}"
        )
        inserted = conn.execute(
            "INSERT INTO memory_collections (name, uid, embedder, dimensions, created_at, partition) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING name",
            (created.name, created.uid, created.embedder, created.dimensions, created.created_at, created.partition),
        ).fetchone()
        if inserted is None:  # another process created it first (we waited for its commit): use theirs
            found = self._find(conn, name, lock="SHARE")
            assert found is not None
            return found
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF memory_records FOR VALUES IN ({})").format(
                sql.Identifier(created.partition), sql.Literal(created.name)
            )
        )
        _create_index(conn, created)
        return created

    def delete(self, collection: str, ids: str | Iterable[str]) -> int:
        """Delete records by id; returns how many existed. Unknown ids are ignored."""
        wanted = [ids] if isinstance(ids, str) else builtins.list(ids)
        with self.pool.connection() as conn, conn.transaction():
            self._require(conn, collection, lock="SHARE")
            cursor = conn.execute(
                "DELETE FROM memory_records WHERE collection = %s AND id = ANY(%s)", (collection, wanted)
            )
            return cursor.rowcount

    def drop(self, collection: str) -> int:
        """Delete a collection, its records, its index and its uploaded documents' bytes; returns how many
        records it had."""
        from psycopg import sql

        with self.pool.connection() as conn, conn.transaction():
            current = self._require(conn, collection, lock="UPDATE")
            row = conn.execute("SELECT count(*) FROM memory_records WHERE collection = %s", (collection,)).fetchone()
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(current.partition)))  # and its index
            conn.execute("DELETE FROM memory_collections WHERE name = %s", (collection,))
            conn.execute("DELETE FROM memory_uploads WHERE collection = %s", (upload_folder(collection),))
        remove_uploads(self.path, collection)  # this server's working copy
        return int(row[0]) if row else 0

    def reembed(self, collection: str, embedder: Embedder | None = None, *, batch_size: int = 256) -> int:
        """Re-embed every record with ``embedder`` (default: the store's); returns how many.

        Texts are embedded outside any transaction; the vectors, the collection's new embedder and
        its new index are written in one transaction, after embedding whatever was saved meanwhile.
        """
        from psycopg import sql

        embedder = embedder or self.embedder
        with self.pool.connection() as conn:
            self._require(conn, collection)
            rows = conn.execute("SELECT id, text FROM memory_records WHERE collection = %s", (collection,)).fetchall()
        vectors = embed_texts(embedder, rows, batch_size, key=tuple)
        with self.pool.connection() as conn, conn.transaction():
            old = self._require(conn, collection, lock="UPDATE")  # saves wait (they lock it FOR SHARE)
            rows = conn.execute("SELECT id, text FROM memory_records WHERE collection = %s", (collection,)).fetchall()
            vectors |= embed_texts(embedder, [row for row in rows if tuple(row) not in vectors], batch_size, key=tuple)
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(old.index_name)))
            new = dataclasses.replace(
                old, uid=uuid.uuid4().hex, embedder=embedder.name, dimensions=int(embedder.dimensions)
            )
            # The new generation keeps the old row versions (still in the table until VACUUM, and read
            # by CREATE INDEX) out of the new index's WHERE: their vectors may have other dimensions.
            with conn.cursor() as cursor:
                cursor.executemany(
                    "UPDATE memory_records SET embedding = %s, generation = %s WHERE collection = %s AND id = %s",
                    [(vectors[(record_id, text)], new.uid, collection, record_id) for record_id, text in rows],
                )
            conn.execute(
                "UPDATE memory_collections SET uid = %s, embedder = %s, dimensions = %s WHERE name = %s",
                (new.uid, new.embedder, new.dimensions, collection),
            )
            _create_index(conn, new)  # built once over the new vectors
        return len(rows)

    # --- reading -----------------------------------------------------------------------------

    def get_many(
        self, collection: str, ids: Iterable[str], *, with_embedding: bool = False
    ) -> builtins.list[MemoryRecord]:
        """The records that exist among ``ids``, in the order asked."""
        wanted = builtins.list(ids)
        columns = RECORD_COLUMNS + (", embedding" if with_embedding else "")
        with self.pool.connection() as conn:
            self._require(conn, collection)
            rows = conn.execute(
                f"SELECT {columns} FROM memory_records WHERE collection = %s AND id = ANY(%s)", (collection, wanted)
            ).fetchall()
        by_id = {row[0]: _record(row) for row in rows}
        return [by_id[i] for i in dict.fromkeys(wanted) if i in by_id]

    def count(self, collection: str) -> int:
        with self.pool.connection() as conn:
            self._require(conn, collection)
            row = conn.execute("SELECT count(*) FROM memory_records WHERE collection = %s", (collection,)).fetchone()
        return int(row[0]) if row else 0

    def collections(self) -> builtins.list[CollectionInfo]:
        with self.pool.connection() as conn:
            return self._collections(conn)

    @staticmethod
    def _collections(conn: Connection[Any]) -> builtins.list[CollectionInfo]:
        rows = conn.execute(
            "SELECT c.name, c.embedder, c.dimensions, c.created_at, "
            "(SELECT count(*) FROM memory_records r WHERE r.collection = c.name) "
            'FROM memory_collections c ORDER BY c.name COLLATE "C"'
        ).fetchall()
        return [
            CollectionInfo(name, emb, dims, int(count), created.astimezone(timezone.utc))
            for name, emb, dims, created, count in rows
        ]

    def metadata(self, collection: str, where: Mapping[str, Any] | None = None) -> dict[str, Metadata]:
        """Ids and metadata only (no texts, no vectors), e.g. to decide what to re-ingest."""
        condition, params = compile_where_pg(where)
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT id, metadata FROM memory_records WHERE collection = %s AND {condition}",
                (collection, *params),
            ).fetchall()
        return {record_id: _metadata(raw) for record_id, raw in rows}

    def list(
        self, collection: str, limit: int | None = 20, offset: int = 0, where: Mapping[str, Any] | None = None
    ) -> builtins.list[MemoryRecord]:
        """Records in id order, a page at a time (``limit=None``: all of them)."""
        condition, params = compile_where_pg(where)
        with self.pool.connection() as conn:
            self._require(conn, collection)
            rows = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM memory_records WHERE collection = %s AND {condition} "
                "ORDER BY id LIMIT %s OFFSET %s",
                (collection, *params, None if limit is None else int(limit), int(offset)),
            ).fetchall()
        return [_record(row) for row in rows]

    def search(
        self,
        collection: str,
        query: str | Any,
        limit: int = 5,
        min_relevance: float = 0.0,
        where: Mapping[str, Any] | None = None,
        mmr: float | None = None,
    ) -> builtins.list[SearchHit]:
        """The ``limit`` records most similar to ``query`` (a text, or a vector), best first.

        As :meth:`memories.store.MemoryStore.search`: ``where`` filters before the top-k, ``mmr``
        re-ranks the best max(4×limit, 20) for diversity, hits below ``min_relevance`` are dropped.
        """
        if limit <= 0:
            return []
        check_mmr(mmr)
        condition, params = compile_where_pg(where)
        with self.pool.connection() as conn:
            known = self._require(conn, collection)
        vector = self._query_vector(known, query)  # embedding (slow) outside the transaction
        pool = limit if mmr is None else max(MMR_POOL_FACTOR * limit, 20)
        with self.pool.connection() as conn, conn.transaction():
            current = self._require(conn, collection)
            if (current.embedder, current.dimensions) != (known.embedder, known.dimensions):
                vector = self._query_vector(current, query)  # re-embedded meanwhile (rare)
            rows = self._nearest(conn, current, vector, condition, params, pool, exact=not current.indexed)
            if len(rows) < pool and current.indexed:
                # Fewer than asked: either fewer records match, or the filter was so selective that the
                # iterative index scan gave up (hnsw.max_scan_tuples). An exact scan settles it.
                rows = self._nearest(conn, current, vector, condition, params, pool, exact=True)
        scores = np.array([_relevance(row[-1]) for row in rows], dtype=np.float64)
        order = np.argsort(-scores, kind="stable")  # relaxed_order may return near-ties out of order
        rows, scores = [rows[i] for i in order], scores[order]
        keep = [i for i, score in enumerate(scores) if score >= min_relevance]
        rows, scores = [rows[i] for i in keep], scores[keep]
        if mmr is not None and rows:
            vectors = normalize_rows(np.stack([_vector(row[6]) for row in rows]))
            picked = mmr_order(scores.astype(np.float32), vectors, limit, mmr)
            rows, scores = [rows[i] for i in picked], scores[picked]
        return [
            SearchHit(_record(row[:6]), float(min(1.0, max(-1.0, score))))
            for row, score in zip(rows[:limit], scores[:limit], strict=True)
        ]

    def _nearest(
        self,
        conn: Connection[Any],
        collection: _Collection,
        vector: np.ndarray,
        condition: LiteralString,
        params: Sequence[Any],
        pool: int,
        *,
        exact: bool,
        explain: bool = False,
    ) -> builtins.list[Any]:
        from psycopg import sql

        if exact:
            conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
        else:
            # Iterative scan (pgvector 0.8): the graph walk goes on until `pool` rows pass the filter.
            conn.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', %s, true)",
                (str(min(MAX_EF_SEARCH, max(self.ef_search, pool))),),
            )
        prefix: LiteralString = "EXPLAIN " if explain else ""
        query = sql.SQL(
            prefix + "SELECT {columns}, embedding, {distance} FROM {partition} "
            "WHERE generation = {generation} AND {condition} ORDER BY {distance} LIMIT %s"
        ).format(
            columns=sql.SQL(RECORD_COLUMNS),
            # The collection's own partition, not the parent with `collection = ...`: the planner would
            # weigh the primary key against the HNSW index for that condition (always true here). The
            # generation as a literal (a uuid's hex) so the partial index's WHERE is matched, and the same
            # distance expression as the index, so it is used.
            partition=sql.Identifier(collection.partition),
            generation=sql.Literal(collection.uid),
            distance=_distance(collection.dimensions),
            condition=sql.SQL(condition),
        )
        return conn.execute(query, (vector, *params, vector, pool)).fetchall()

    def explain(
        self, collection: str, query: str | Any, limit: int = 5, where: Mapping[str, Any] | None = None
    ) -> builtins.list[str]:
        """PostgreSQL's plan for this search's first query (EXPLAIN): whether the collection's HNSW index is used."""
        condition, params = compile_where_pg(where)
        with self.pool.connection() as conn, conn.transaction():
            current = self._require(conn, collection)
            vector = self._query_vector(current, query)
            rows = self._nearest(
                conn, current, vector, condition, params, limit, exact=not current.indexed, explain=True
            )
        return [row[0] for row in rows]

    # --- maintenance -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Backend, database, collections and their indexes, for ``kernel-app memory stats``: JSON-friendly."""
        with self.pool.connection() as conn:
            versions = conn.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            ).fetchone()
            collections = []
            for info in self._collections(conn):
                current = self._require(conn, info.name)
                size = conn.execute("SELECT pg_relation_size(to_regclass(%s))", (current.index_name,)).fetchone()
                index: dict[str, Any] = {"kind": "exact", "why": f"over {HNSW_MAX_DIMENSIONS} dimensions"}
                if current.indexed and not _index_exists(conn, current):
                    why = "HNSW index not built: a load is running, or stopped (run its memory migrate again)"
                    index = {"kind": "exact", "why": why}
                elif current.indexed:
                    index = {
                        "kind": "hnsw",
                        "name": current.index_name,
                        "table": current.partition,
                        "opclass": HNSW_OPCLASS,
                        "iterative_scan": "relaxed_order",
                        "ef_search": self.ef_search,
                        "bytes": int(size[0] or 0) if size else 0,
                    }
                collections.append(
                    {
                        "name": info.name,
                        "embedder": info.embedder,
                        "dimensions": info.dimensions,
                        "records": info.count,
                        "created_at": info.created_at.isoformat(),
                        "index": index,
                    }
                )
        server, pgvector = versions if versions else (None, None)
        return {
            "backend": self.backend,
            "database": describe_url(self.database_url),
            "server_version": server,
            "pgvector": pgvector,
            "embedder": {"name": self.embedder.name, "dimensions": self.embedder.dimensions},
            "collections": collections,
        }

    def rebuild_index(self, collection: str) -> str:
        """Rebuild one collection's HNSW index now (REINDEX; built if it is missing, as after an interrupted
        :meth:`index_deferred` load); returns its kind (hnsw, or exact)."""
        from psycopg import sql

        with self.pool.connection() as conn:
            current = self._require(conn, collection)
            if not current.indexed:
                return "exact"
            if _index_exists(conn, current):
                conn.execute(sql.SQL("REINDEX INDEX {}").format(sql.Identifier(current.index_name)))
                return "hnsw"
        self.ensure_index(collection)
        return "hnsw"

    @contextlib.contextmanager
    def index_deferred(self, collection: str) -> Iterator[None]:
        """While the block runs, ``collection`` (which must exist) has no HNSW index; it is built once at
        the end. For a load of many batches into a collection that has rows (``memory migrate``): each
        batch would otherwise insert its rows into the graph one by one, several times slower than one
        build over them all (bench/bench_pg_append.py).

        Searches meanwhile are exact scans of the collection (right, slower), from any process; the
        build at the end blocks the collection's writes (not its searches) while it runs. The index is
        built however the block ends; should that fail too (the database gone), the collection stays
        exact until :meth:`ensure_index` builds it (``memory migrate`` run again does).
        """
        from psycopg import sql

        with self.pool.connection() as conn, conn.transaction():
            current = self._require(conn, collection, lock="SHARE")
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(current.index_name)))
        try:
            yield
        except BaseException:
            try:
                self.ensure_index(collection)
            except Exception as error:  # the load's own error is the one to see
                log.warning("memory: %s's HNSW index was not built (%s); ensure_index builds it", collection, error)
            raise
        self.ensure_index(collection)

    def ensure_index(self, collection: str) -> None:
        """Build the collection's HNSW index if it is missing (one transaction, a bigger build memory)."""
        with self.pool.connection() as conn, conn.transaction():
            current = self._find(conn, collection, lock="SHARE")
            if current is None or _index_exists(conn, current):  # dropped, or re-embedded with a new index
                return
            conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (BULK_INDEX_BUILD_MEMORY,))
            _create_index(conn, current)

    def repair(self) -> Any:
        """Not for this backend: PostgreSQL keeps its own consistency (its WAL, its checksums)."""
        raise MemoryUsageError(
            "memory repair is for the local store (SQLite + FAISS files); with database_url set the store is "
            "PostgreSQL: use its own tools (pg_amcheck, REINDEX), or `rebuild_index` for one collection"
        )

    # --- internals ---------------------------------------------------------------------------

    @staticmethod
    def _find(conn: Connection[Any], name: str, lock: str | None = None) -> _Collection | None:
        suffixes: dict[str | None, LiteralString] = {None: "", "SHARE": " FOR SHARE", "UPDATE": " FOR UPDATE"}
        suffix = suffixes[lock]
        row = conn.execute(
            "SELECT name, uid, embedder, dimensions, created_at, partition FROM memory_collections WHERE name = %s"
            + suffix,
            (name,),
        ).fetchone()
        return None if row is None else _Collection(*row)

    def _require(self, conn: Connection[Any], name: str, lock: str | None = None) -> _Collection:
        found = self._find(conn, name, lock)
        if found is None:
            raise CollectionNotFoundError(name, [c.name for c in self._collections(conn)])
        return found


def _distance(dimensions: int) -> Any:
    from psycopg import sql

    # pgvector indexes a typed expression: `vector` without dimensions cannot carry an HNSW index.
    return sql.SQL("(embedding::vector({dims})) <=> %s::vector({dims})").format(dims=sql.Literal(int(dimensions)))


def _create_index(conn: Connection[Any], collection: _Collection) -> None:
    from psycopg import sql

    if not collection.indexed:
        return
    conn.execute(
        sql.SQL(
            "CREATE INDEX {index} ON {partition} USING hnsw ((embedding::vector({dims})) {opclass}) "
            "WHERE generation = {generation}"
        ).format(
            index=sql.Identifier(collection.index_name),
            partition=sql.Identifier(collection.partition),
            dims=sql.Literal(collection.dimensions),
            opclass=sql.SQL(HNSW_OPCLASS),
            generation=sql.Literal(collection.uid),
        )
    )


def _row_upsert(
    conn: Connection[Any], collection: _Collection, pending: Sequence[Pending], now: datetime, keep_times: bool
) -> None:
    from psycopg.types.json import Jsonb

    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO memory_records (collection, id, text, description, metadata, embedding, "
            "generation, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            + (UPSERT_SET_KEEPING_TIMES if keep_times else UPSERT_SET),
            [
                (
                    collection.name,
                    p.id,
                    p.text,
                    p.description,
                    Jsonb(p.metadata),
                    p.vector,
                    collection.uid,
                    p.created_at or now,
                    p.updated_at or now,
                )
                for p in pending
            ],
        )


def _bulk_upsert(
    conn: Connection[Any], collection: _Collection, pending: Sequence[Pending], now: datetime, keep_times: bool
) -> None:
    """A big batch: binary COPY into a temporary table, then one upsert from it; in the caller's
    transaction, so a failure anywhere leaves the collection as it was (the dropped index included).

    Into an empty collection, it drops the HNSW index first and builds it once at the end: one build
    over all rows is much faster than updating the graph row by row. The drop locks the partition
    until commit: searches of this (empty) collection wait for the load; other collections are not
    touched. A collection that has rows keeps its index (its searches must not wait).
    """
    from psycopg import sql

    # One upsert cannot touch a row twice ("ON CONFLICT DO UPDATE command cannot affect row a second
    # time"): the last record of an id wins, as with row-by-row saves.
    latest = builtins.list({p.id: p for p in pending}.values())
    conn.execute(
        "CREATE TEMPORARY TABLE memory_bulk (id text, text text, description text, metadata jsonb, "
        "embedding vector, created_at timestamptz, updated_at timestamptz) ON COMMIT DROP"
    )
    copy_rows = (
        "COPY memory_bulk (id, text, description, metadata, embedding, created_at, updated_at) "
        "FROM STDIN (FORMAT BINARY)"
    )
    with conn.cursor() as cursor, cursor.copy(copy_rows) as copy:
        copy.set_types(["text", "text", "text", "jsonb", "vector", "timestamptz", "timestamptz"])
        for p in latest:
            copy.write_row(
                (p.id, p.text, p.description, p.metadata, p.vector, p.created_at or now, p.updated_at or now)
            )
    # (not when the index is gone already: an index_deferred load builds it at its end)
    reindex = collection.indexed and _empty(conn, collection) and _index_exists(conn, collection)
    if reindex:
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(collection.index_name)))
    conn.execute(
        "INSERT INTO memory_records (collection, id, text, description, metadata, embedding, generation, "
        "created_at, updated_at) SELECT %s, id, text, description, metadata, embedding, %s, created_at, updated_at "
        "FROM memory_bulk " + (UPSERT_SET_KEEPING_TIMES if keep_times else UPSERT_SET),
        (collection.name, collection.uid),
    )
    if reindex:
        conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (BULK_INDEX_BUILD_MEMORY,))
        _create_index(conn, collection)


def _index_exists(conn: Connection[Any], collection: _Collection) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (collection.index_name,)).fetchone()
    return bool(row and row[0])


def _empty(conn: Connection[Any], collection: _Collection) -> bool:
    from psycopg import sql

    row = conn.execute(
        sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(collection.partition))
    ).fetchone()
    return bool(row and row[0])


def _relevance(distance: float | None) -> float:
    # Cosine distance is NaN for an all-zero vector, which the local store scores 0 (it matches nothing).
    if distance is None or math.isnan(distance):
        return 0.0
    return 1.0 - float(distance)


def _vector(value: Any) -> np.ndarray:
    """pgvector's adapter loads a ``vector`` as a ``pgvector.Vector``; the store hands out float32 arrays."""
    array = value.to_numpy() if hasattr(value, "to_numpy") else value
    return np.asarray(array, dtype=np.float32)


def _metadata(raw: Any) -> Metadata:
    return raw if isinstance(raw, dict) else {}


def _record(row: Sequence[Any]) -> MemoryRecord:
    embedding = None
    if len(row) > 6 and row[6] is not None:
        embedding = _vector(row[6])
    return MemoryRecord(
        id=row[0],
        text=row[1],
        description=row[2],
        metadata=_metadata(row[3]),
        embedding=embedding,
        created_at=_utc(row[4]),
        updated_at=_utc(row[5]),
    )


def _utc(value: datetime | None) -> datetime | None:
    # psycopg answers in the session's TimeZone; the local store answers in UTC.
    return None if value is None else value.astimezone(timezone.utc)


def _rekey_uploads(conn: Connection[Any]) -> None:
    """Migration 3: old uploads' chunks (named by the receiving server's path) get their stable name."""
    from psycopg.types.json import Jsonb

    from memories.uploads import rekey_plan

    for (name,) in conn.execute("SELECT name FROM memory_collections").fetchall():
        rows = conn.execute(
            "SELECT id, metadata, extract(epoch FROM updated_at) FROM memory_records "
            "WHERE collection = %s AND metadata->>'source' LIKE %s",
            (name, "%uploads%"),
        ).fetchall()
        plan = rekey_plan(name, ((i, _metadata(meta), float(updated)) for i, meta, updated in rows))
        if plan.deletes:
            conn.execute("DELETE FROM memory_records WHERE collection = %s AND id = ANY(%s)", (name, plan.deletes))
        for rename in plan.renames:
            conn.execute(
                "UPDATE memory_records SET id = %s, metadata = %s WHERE collection = %s AND id = %s",
                (rename.new_id, Jsonb(rename.metadata), name, rename.old_id),
            )
