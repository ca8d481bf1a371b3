"""MemoryStore: collections of texts with metadata, searchable by meaning.

SQLite (``<path>/memory.sqlite3``) holds the records and is the source of truth; each collection's
FAISS index (``<path>/index/<collection>.faiss`` + ``.json`` stamp) is derived from it and rebuilt
whenever it is missing, damaged or belongs to another incarnation of the collection. Every search
first compares the collection's version counter in SQLite with the index's (one indexed SELECT), so
writes by other processes are seen at once. See docs/memory.md.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memories.db import DB_NAME, Database, default_store_dir  # noqa: F401 (callers import it from here)
from memories.embedders import Embedder, default_embedder
from memories.errors import CollectionNotFoundError
from memories.files import file_lock
from memories.index import CHUNK, CollectionIndex, Identity, IndexSettings, index_path, remove_index_files
from memories.mmr import mmr_order
from memories.records import CollectionInfo, MemoryRecord, Metadata, SearchHit
from memories.store_base import (
    MMR_POOL_FACTOR,
    StoreBase,
    check_collection_name,
    check_embedder,
    check_id,
    check_mmr,
    embed_texts,
)
from memories.uploads import remove_uploads
from memories.where import compile_where

if TYPE_CHECKING:
    from memories.repair import RepairReport

RECORD_COLUMNS = "rid, id, text, description, metadata, created_at, updated_at"


@dataclasses.dataclass(frozen=True)
class _Collection:
    name: str
    uid: str
    embedder: str
    dimensions: int
    created_at: float
    version: int

    @property
    def identity(self) -> Identity:
        return Identity(self.uid, self.embedder, self.dimensions)


class _SqlSource:
    """One collection's vectors as the index sees them, read in the caller's transaction."""

    def __init__(self, conn: Any, collection: _Collection) -> None:
        self.conn = conn
        self.name = collection.name
        self.dimensions = collection.dimensions
        self._version = collection.version  # read in this same snapshot

    def version(self) -> int:
        return self._version

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM records WHERE collection = ?", (self.name,)).fetchone()[0])

    def rids(self) -> np.ndarray:
        cursor = self.conn.execute("SELECT rid FROM records WHERE collection = ? ORDER BY rid", (self.name,))
        return np.fromiter((row[0] for row in cursor), dtype=np.int64)

    def vectors_after(self, rid: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cursor = self.conn.execute(
            "SELECT rid, embedding FROM records WHERE collection = ? AND rid > ? ORDER BY rid", (self.name, rid)
        )
        while rows := cursor.fetchmany(CHUNK):
            yield decode_vectors(rows, self.dimensions)

    def vectors_for(self, rids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.conn.execute(
            "SELECT rid, embedding FROM records WHERE rid IN (SELECT value FROM json_each(?)) AND collection = ?",
            (json.dumps(rids.tolist()), self.name),
        ).fetchall()
        return decode_vectors(rows, self.dimensions)


def decode_vectors(rows: Sequence[tuple[int, bytes]], dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    size = dimensions * 4
    if any(len(blob) != size for _, blob in rows):  # damaged rows are left out (repair reports them)
        rows = [row for row in rows if len(row[1]) == size]
    rids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(len(rows), dimensions)
    return rids, vectors.astype(np.float32, copy=False)


def _blob(vector: np.ndarray | None) -> bytes:
    assert vector is not None  # every pending record is embedded before the write
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


class MemoryStore(StoreBase):
    """A directory of collections. Safe to share between threads and between processes.

    ``embedder`` defaults to the embedded all-MiniLM-L6-v2 (loaded on the first text to embed).
    Index options (``hnsw_threshold``, ``ef_search``, or a whole ``index_settings``) are described
    in :class:`memories.index.IndexSettings`. ``synchronous`` is SQLite's: FULL (default) makes an
    acknowledged save survive a power cut too, NORMAL only a process crash.
    """

    backend = "local"  # PgMemoryStore's is "postgresql" (stats() says which)

    def __init__(
        self,
        path: Path | str,
        embedder: Embedder | None = None,
        *,
        hnsw_threshold: int | None = None,
        ef_search: int | None = None,
        index_settings: IndexSettings | None = None,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path).expanduser()
        self.embedder: Embedder = embedder if embedder is not None else default_embedder()
        settings = index_settings or IndexSettings()
        if hnsw_threshold is not None:
            settings = dataclasses.replace(settings, hnsw_threshold=hnsw_threshold)
        if ef_search is not None:
            settings = dataclasses.replace(settings, ef_search=ef_search)
        self.settings = settings
        self.index_dir = self.path / "index"
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._synchronous, self._busy_timeout = synchronous, busy_timeout
        self.db = Database(self.path / DB_NAME, synchronous=synchronous, busy_timeout=busy_timeout)
        self._indexes: dict[str, CollectionIndex] = {}
        self._known: dict[str, _Collection] = {}  # last collection rows read (hints, not truth)
        self._rekey_uploads()

    def _rekey_uploads(self) -> None:
        """Once per store: name old uploads' chunks ``uploads/COLLECTION/NAME`` (``memories.uploads``).

        Recorded in a table of its own rather than by the schema version, so an older Kernel App still
        opens the store (nothing it reads changed shape)."""
        from memories.uploads import REKEY_PASS, rekey_plan

        with self.db.read() as conn:
            if _pass_done(conn, REKEY_PASS):
                return
        with self.db.write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS passes (name TEXT PRIMARY KEY, done_at REAL NOT NULL)")
            if _pass_done(conn, REKEY_PASS):
                return  # another process ran it meanwhile
            for (name,) in conn.execute("SELECT name FROM collections").fetchall():
                rows = conn.execute(
                    "SELECT id, metadata, updated_at FROM records WHERE collection = ? AND metadata LIKE ?",
                    (name, "%uploads%"),
                ).fetchall()
                plan = rekey_plan(name, ((i, _metadata(raw), updated) for i, raw, updated in rows))
                if not plan:
                    continue
                conn.executemany(
                    "DELETE FROM records WHERE collection = ? AND id = ?", ((name, i) for i in plan.deletes)
                )
                # The rid stays: the FAISS index (keyed by rid) keeps its vectors.
                conn.executemany(
                    "UPDATE records SET id = ?, metadata = ? WHERE collection = ? AND id = ?",
                    ((r.new_id, json.dumps(r.metadata, ensure_ascii=False), name, r.old_id) for r in plan.renames),
                )
                conn.execute("UPDATE collections SET version = version + 1 WHERE name = ?", (name,))
            conn.execute("INSERT INTO passes (name, done_at) VALUES (?, ?)", (REKEY_PASS, time.time()))

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Write indexes with unsaved changes (they are rebuilt anyway if this is skipped)."""
        with self.db.lock:
            for name, index in self._indexes.items():
                if index.unsaved:
                    self._save_index(name, index)
            self._indexes.clear()
            self.db.close()

    def __repr__(self) -> str:
        return f"MemoryStore({str(self.path)!r}, embedder={self.embedder.name!r})"

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

        An item is a text, a :class:`MemoryRecord`, or a mapping with ``text`` and optionally ``id``,
        ``description``, ``metadata`` and a precomputed ``embedding`` (then not embedded again).
        Texts are embedded in one batch before the transaction. ``replacing``: ids deleted in the
        same transaction unless saved again by it (re-ingesting a document atomically).
        ``keep_times``: an item's own ``created_at`` / ``updated_at`` (datetimes, as records of another
        store carry them: ``memory migrate``) are stored instead of the save's time.
        """
        name = check_collection_name(collection)
        pending = [self._pending(item, keep_times) for item in items]
        replacing = [check_id(i) for i in ([replacing] if isinstance(replacing, str) else replacing)]
        if not pending and not replacing:
            return []
        known = self._find(name)
        if known is not None:
            check_embedder(known, self.embedder)
        self._embed(pending)
        now = time.time()
        with self.db.write() as conn:
            current = self._find(name, conn) or self._create(conn, name, now)
            check_embedder(current, self.embedder)
            saved = {p.id for p in pending}
            stale = [(name, i) for i in dict.fromkeys(replacing) if i not in saved]
            conn.executemany("DELETE FROM records WHERE collection = ? AND id = ?", stale)
            # OR REPLACE deletes the old row and inserts a new one under a new rid: the index sees a
            # removal plus an addition, never a vector changing under a known id (SK's Faiss bug).
            conn.executemany(
                "INSERT OR REPLACE INTO records (collection, id, text, description, metadata, embedding, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, "
                "COALESCE(?, (SELECT created_at FROM records WHERE collection = ? AND id = ?), ?), ?)",
                (
                    (
                        name,
                        p.id,
                        p.text,
                        p.description,
                        json.dumps(p.metadata, ensure_ascii=False) if p.metadata else "{}",
                        _blob(p.vector),
                        None if p.created_at is None else p.created_at.timestamp(),
                        name,
                        p.id,
                        now,
                        now if p.updated_at is None else p.updated_at.timestamp(),
                    )
                    for p in pending
                ),
            )
            conn.execute("UPDATE collections SET version = version + 1 WHERE name = ?", (name,))
        return [p.id for p in pending]

    def _create(self, conn: Any, name: str, now: float) -> _Collection:
        created = _Collection(name, uuid.uuid4().hex, self.embedder.name, int(self.embedder.dimensions), now, 0)
        conn.execute(
            "INSERT INTO collections (name, uid, embedder, dimensions, created_at, version) VALUES (?, ?, ?, ?, ?, 0)",
            (created.name, created.uid, created.embedder, created.dimensions, created.created_at),
        )
        return created

    def delete(self, collection: str, ids: str | Iterable[str]) -> int:
        """Delete records by id; returns how many existed. Unknown ids are ignored."""
        wanted = [ids] if isinstance(ids, str) else builtins.list(ids)
        with self.db.write() as conn:
            self._require(collection, conn)
            deleted = 0
            for start in range(0, len(wanted), 10_000):
                chunk = json.dumps(wanted[start : start + 10_000])
                deleted += conn.execute(
                    "DELETE FROM records WHERE collection = ? AND id IN (SELECT value FROM json_each(?))",
                    (collection, chunk),
                ).rowcount
            if deleted:
                conn.execute("UPDATE collections SET version = version + 1 WHERE name = ?", (collection,))
        return deleted

    def drop(self, collection: str) -> int:
        """Delete a collection, its records, its index files and its uploaded documents (``uploads/COLLECTION``);
        returns how many records it had."""
        with self.db.write() as conn:
            self._require(collection, conn)
            count = conn.execute("DELETE FROM records WHERE collection = ?", (collection,)).rowcount
            conn.execute("DELETE FROM collections WHERE name = ?", (collection,))
        with self.db.lock:
            self._indexes.pop(collection, None)
            with file_lock(self._lock_path(collection)):
                remove_index_files(self.index_dir, collection)
        remove_uploads(self.path, collection)
        return count

    def reembed(self, collection: str, embedder: Embedder | None = None, *, batch_size: int = 256) -> int:
        """Re-embed every record with ``embedder`` (default: the store's); returns how many.

        Texts are embedded outside any transaction; the new vectors and the collection's new
        embedder are written in one transaction, after embedding whatever was saved meanwhile.
        """
        embedder = embedder or self.embedder
        with self.db.read() as conn:
            self._require(collection, conn)
            rows = conn.execute("SELECT rid, text FROM records WHERE collection = ?", (collection,)).fetchall()
        vectors = embed_texts(embedder, rows, batch_size, key=_rid)
        with self.db.write() as conn:
            self._require(collection, conn)
            rows = conn.execute("SELECT rid, text FROM records WHERE collection = ?", (collection,)).fetchall()
            vectors |= embed_texts(embedder, [r for r in rows if r[0] not in vectors], batch_size, key=_rid)
            conn.executemany(
                "UPDATE records SET embedding = ? WHERE rid = ?",
                ((vectors[rid].astype("<f4").tobytes(), rid) for rid, _ in rows),
            )
            # A new uid: every index file of the old vectors is now stale.
            conn.execute(
                "UPDATE collections SET uid = ?, embedder = ?, dimensions = ?, version = version + 1 WHERE name = ?",
                (uuid.uuid4().hex, embedder.name, int(embedder.dimensions), collection),
            )
        with self.db.lock:
            self._indexes.pop(collection, None)
            self._known.pop(collection, None)
        return len(rows)

    # --- reading -----------------------------------------------------------------------------

    def get_many(
        self, collection: str, ids: Iterable[str], *, with_embedding: bool = False
    ) -> builtins.list[MemoryRecord]:
        """The records that exist among ``ids``, in the order asked."""
        wanted = builtins.list(ids)
        with self.db.read() as conn:
            self._require(collection, conn)
            columns = RECORD_COLUMNS + (", embedding" if with_embedding else "")
            rows = conn.execute(
                f"SELECT {columns} FROM records WHERE collection = ? AND id IN (SELECT value FROM json_each(?))",
                (collection, json.dumps(wanted)),
            ).fetchall()
        by_id = {row[1]: _record(row) for row in rows}
        return [by_id[i] for i in dict.fromkeys(wanted) if i in by_id]

    def count(self, collection: str) -> int:
        with self.db.read() as conn:
            self._require(collection, conn)
            return int(conn.execute("SELECT count(*) FROM records WHERE collection = ?", (collection,)).fetchone()[0])

    def collections(self) -> builtins.list[CollectionInfo]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT c.name, c.embedder, c.dimensions, c.created_at, "
                "(SELECT count(*) FROM records r WHERE r.collection = c.name) FROM collections c ORDER BY c.name"
            ).fetchall()
        return [  # created_at is NOT NULL
            CollectionInfo(name, emb, dims, count, datetime.fromtimestamp(created, tz=timezone.utc))
            for name, emb, dims, created, count in rows
        ]

    def metadata(self, collection: str, where: Mapping[str, Any] | None = None) -> dict[str, Metadata]:
        """Ids and metadata only (no texts, no vectors), e.g. to decide what to re-ingest."""
        condition, params = compile_where(where)
        with self.db.read() as conn:
            if self._find(collection, conn) is None:
                return {}
            rows = conn.execute(
                f"SELECT id, metadata FROM records WHERE collection = ? AND {condition}", (collection, *params)
            ).fetchall()
        return {record_id: _metadata(raw) for record_id, raw in rows}

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

        ``where`` filters on metadata before the top-k (syntax in memories.where). ``mmr`` in [0, 1]
        trades relevance for diversity (maximal marginal relevance over the best 4×limit); hits then
        come in pick order. ``relevance`` is the cosine similarity; hits below ``min_relevance`` are
        dropped.
        """
        if limit <= 0:
            return []
        check_mmr(mmr)
        condition, params = compile_where(where)
        # A possibly stale row is enough to check the embedder before embedding (slow): the snapshot
        # below checks again.
        known = self._known.get(collection)
        if known is None or (known.embedder, known.dimensions) != (self.embedder.name, self.embedder.dimensions):
            known = self._require(collection)
        vector = self._query_vector(known, query)
        pool = limit if mmr is None else max(MMR_POOL_FACTOR * limit, 20)
        with self.db.read() as conn:
            current = self._require(collection, conn)
            if current.identity != known.identity:  # re-embedded meanwhile (rare): check and embed again
                vector = self._query_vector(current, query)
            index = self._index_for(conn, current)
            candidates = None
            if where:
                cursor = conn.execute(
                    f"SELECT rid FROM records WHERE collection = ? AND {condition}", (collection, *params)
                )
                candidates = np.fromiter((row[0] for row in cursor), dtype=np.int64)
            rids, scores = index.search(vector, pool, candidates)
            keep = scores >= min_relevance
            rids, scores = rids[keep], scores[keep]
            if mmr is not None and len(rids):
                order = mmr_order(scores, index.vectors(rids), limit, mmr)
                rids, scores = rids[order], scores[order]
            rids, scores = rids[:limit], scores[:limit]
            rows = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE rid IN (SELECT value FROM json_each(?))",
                (json.dumps(rids.tolist()),),
            ).fetchall()
        by_rid = {row[0]: _record(row) for row in rows}
        return [
            SearchHit(by_rid[int(rid)], float(min(1.0, max(-1.0, score))))
            for rid, score in zip(rids, scores, strict=True)
            if int(rid) in by_rid
        ]

    def list(
        self, collection: str, limit: int | None = 20, offset: int = 0, where: Mapping[str, Any] | None = None
    ) -> builtins.list[MemoryRecord]:
        """Records in id order, a page at a time (``limit=None``: all of them)."""
        condition, params = compile_where(where)
        with self.db.read() as conn:
            self._require(collection, conn)
            rows = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE collection = ? AND {condition} "
                "ORDER BY id LIMIT ? OFFSET ?",
                (collection, *params, -1 if limit is None else int(limit), int(offset)),
            ).fetchall()
        return [_record(row) for row in rows]

    # --- maintenance -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Sizes and index state, for ``kernel-app memory stats``: JSON-friendly."""

        def size(path: Path) -> int:
            return path.stat().st_size if path.exists() else 0

        collections = []
        for info in self.collections():
            with self.db.read() as conn:
                current = self._require(info.name, conn)
                index = self._index_for(conn, current)
            file = index_path(self.index_dir, info.name)
            collections.append(
                {
                    "name": info.name,
                    "embedder": info.embedder,
                    "dimensions": info.dimensions,
                    "records": info.count,
                    "created_at": info.created_at.isoformat(),
                    "index": index.describe() | {"file_bytes": size(file)},
                }
            )
        db = self.db.path
        return {
            "backend": self.backend,
            "path": str(self.path),
            "database_bytes": size(db) + size(db.with_name(db.name + "-wal")),
            "embedder": {"name": self.embedder.name, "dimensions": self.embedder.dimensions},
            "hnsw_threshold": self.settings.hnsw_threshold,
            "collections": collections,
        }

    def repair(self) -> RepairReport:
        """Rebuild every index from the records; salvage a damaged database first. See memories.repair."""
        from memories.repair import repair_store

        with self.db.lock:
            self._indexes.clear()
            self.db.close()
            try:
                return repair_store(self.path, embedder=self.embedder, index_settings=self.settings)
            finally:
                self.db = Database(self.path / DB_NAME, synchronous=self._synchronous, busy_timeout=self._busy_timeout)

    def rebuild_index(self, collection: str) -> str:
        """Rebuild one collection's index from its records now; returns its kind (flat, hnsw or pq)."""
        with self.db.read() as conn:
            current = self._require(collection, conn)
            with file_lock(self._lock_path(collection)):
                index = CollectionIndex.build(_SqlSource(conn, current), current.identity, self.settings)
                self._indexes[collection] = index
                self._save_index(collection, index, locked=True)
        return index.kind

    # --- internals ---------------------------------------------------------------------------

    def _lock_path(self, collection: str) -> Path:
        return self.index_dir / f"{collection}.lock"

    def _index_for(self, conn: Any, collection: _Collection) -> CollectionIndex:
        """The collection's index, in step with the snapshot ``conn`` reads (called in a transaction)."""
        source = _SqlSource(conn, collection)
        cached = self._indexes.get(collection.name)
        if cached is not None and cached.identity == collection.identity:
            cached.sync(source)
            if self._should_save(cached):
                self._save_index(collection.name, cached)
            return cached
        file = index_path(self.index_dir, collection.name)
        # The file lock makes a second process wait for the first one's build and then load it.
        with file_lock(self._lock_path(collection.name)):
            index = CollectionIndex.load(file, collection.identity, self.settings)
            if index is not None:
                index.full_sync(source)
            else:
                index = CollectionIndex.build(source, collection.identity, self.settings)
            if self._should_save(index):
                self._save_index(collection.name, index, locked=True)
        self._indexes[collection.name] = index
        return index

    def _should_save(self, index: CollectionIndex) -> bool:
        return index.rebuilt or index.unsaved >= max(self.settings.persist_every, index.live_count // 10)

    def _save_index(self, name: str, index: CollectionIndex, *, locked: bool = False) -> None:
        file = index_path(self.index_dir, name)
        if locked:
            index.save(file)
            return
        with file_lock(self._lock_path(name)):
            index.save(file)

    def _find(self, name: str, conn: Any = None) -> _Collection | None:
        if conn is None:
            with self.db.read() as own:
                return self._find(name, own)
        row = conn.execute(
            "SELECT name, uid, embedder, dimensions, created_at, version FROM collections WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            self._known.pop(name, None)
            return None
        self._known[name] = found = _Collection(*row)
        return found

    def _require(self, name: str, conn: Any = None) -> _Collection:
        found = self._find(name, conn)
        if found is None:
            raise CollectionNotFoundError(name, [c.name for c in self.collections()])
        return found


def _pass_done(conn: Any, name: str) -> bool:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'passes'").fetchone() is None:
        return False
    return conn.execute("SELECT 1 FROM passes WHERE name = ?", (name,)).fetchone() is not None


def _metadata(raw: str) -> Metadata:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _record(row: Sequence[Any]) -> MemoryRecord:
    embedding = None
    if len(row) > 7 and row[7] is not None:
        embedding = np.frombuffer(row[7], dtype="<f4").astype(np.float32)
    return MemoryRecord(
        id=row[1],
        text=row[2],
        description=row[3],
        metadata=_metadata(row[4]),
        embedding=embedding,
        created_at=_timestamp(row[5]),
        updated_at=_timestamp(row[6]),
    )


def _rid(row: Sequence[Any]) -> int:
    return int(row[0])
