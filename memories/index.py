"""The FAISS side: one index per collection, derived from the records and kept in step with them.

Ids in the index are the SQLite ``rid`` of each record (``IndexIDMap2``). A record's vector never
changes under its rid (an upsert writes a new row, a re-embed changes the collection's ``uid``), so
the index is brought up to date from two facts: rows with a rid above the last one indexed are new,
and if the row count does not add up, some indexed rids were deleted (found by a set difference).

Small collections use an exact ``IndexFlatIP``. Above ``hnsw_threshold`` live records the index
becomes an ``IndexHNSWFlat`` (inner product); HNSW cannot remove vectors, so deletions become
tombstones that searches skip (an ``IDSelectorNot``) until they pass ``compact_ratio`` and the graph
is rebuilt. ``efSearch`` is calibrated at each (re)build: the smallest value whose recall@10 against
exact search, for a held-out sample of the collection's own vectors used as queries, reaches
``target_recall``. If none up to ``max_ef_search`` does (uniformly random vectors, for one, have no
neighbourhood structure), the collection stays exact and HNSW is not tried again before it doubles.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np

from memories.files import atomic_write, atomic_write_bytes, remove_stale_temps

log = logging.getLogger("memories")

STAMP_FORMAT = 1
CHUNK = 50_000  # rows per batch when streaming vectors (bounded memory)
CALIBRATION_QUERIES = 150
# efSearch values tried, from a floor of 64: below it the saving is small and queries unlike the
# stored vectors (an outlier record, a vague question) start to miss.
EF_STEPS = (64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
# A recall measured on 150 queries x 10 hits has a standard error of ~0.006 near 0.95: the target
# plus 0.01 makes a true recall below the target unlikely (~5 %) without demanding the impossible of
# graphs whose recall levels off just under 0.98 (1M clustered vectors, docs/memory.md).
CALIBRATION_MARGIN = 0.01


@dataclass(frozen=True)
class IndexSettings:
    """How collections are indexed; see docs/memory.md for the measurements behind the defaults."""

    hnsw_threshold: int = 50_000  # live records above which a collection gets an HNSW graph
    hnsw_m: int = 32  # graph degree: recall per unit of search time vs. memory and build time
    ef_construction: int = 128  # 64 builds ~1.7x faster but its recall levels off at ~0.95 at 1M
    ef_search: int | None = None  # None: calibrated per collection for target_recall
    target_recall: float = 0.95
    # Largest efSearch calibration may pick; None: n / (6 * hnsw_m), within 64..4096, about where an
    # HNSW search stops being at least twice as fast as an exact scan of n vectors.
    max_ef_search: int | None = None
    exact_filter_limit: int = 20_000  # filtered searches over at most this many records are exact
    compact_ratio: float = 0.2  # rebuild an HNSW graph when this share of it is deleted
    persist_every: int = 2_000  # save the index file after this many unsaved changes


@dataclass(frozen=True)
class Identity:
    """What an index file must match to be reused: the collection's incarnation and embedder."""

    uid: str
    embedder: str
    dimensions: int


class VectorSource(Protocol):
    """The records of one collection, read inside one SQLite snapshot."""

    def version(self) -> int: ...

    def count(self) -> int: ...

    def rids(self) -> np.ndarray: ...

    def vectors_after(self, rid: int) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...

    def vectors_for(self, rids: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@contextlib.contextmanager
def faiss_threads(count: int) -> Iterator[None]:
    # One query scans faster on one thread: OpenMP fan-out costs more than it saves, and much more
    # on a busy machine. Builds keep every core.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class _ExactTopK:
    """Streaming exact top-k of a few queries over vectors that arrive in chunks."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries = queries
        self.k = k
        self.scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(queries), 0), dtype=np.int64)

    def update(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        ids = np.concatenate([self.ids, np.broadcast_to(ids, (len(self.queries), len(ids)))], axis=1)
        if scores.shape[1] > self.k:
            keep = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
            scores = np.take_along_axis(scores, keep, axis=1)
            ids = np.take_along_axis(ids, keep, axis=1)
        self.scores, self.ids = scores, ids

    def ranked(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) per query, best first."""
        order = np.argsort(-self.scores, axis=1, kind="stable")
        return np.take_along_axis(self.ids, order, axis=1), np.take_along_axis(self.scores, order, axis=1)


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (ids, scores), best first."""
    if len(scores) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        scores, ids = scores[keep], ids[keep]
    order = np.argsort(-scores, kind="stable")
    return ids[order], scores[order]


def _new_flat(dimensions: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimensions))


def _new_hnsw(dimensions: int, settings: IndexSettings) -> Any:
    graph = faiss.IndexHNSWFlat(dimensions, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = settings.ef_construction
    return faiss.IndexIDMap2(graph)


class CollectionIndex:
    """A collection's FAISS index plus what is needed to keep it in step with SQLite."""

    def __init__(self, identity: Identity, settings: IndexSettings, index: Any | None = None, kind: str = "flat"):
        self.identity = identity
        self.settings = settings
        self.index = index if index is not None else _new_flat(identity.dimensions)
        self.kind = kind
        self.ef_search = settings.ef_search or 64
        self.calibrated_at = 0  # live count when ef_search was calibrated
        self.hnsw_blocked_below = 0  # HNSW was found no better than exact below this size
        self.tombstones: set[int] = set()
        self.version = -1  # the collection version this index reflects
        self.max_rid = 0  # the highest rid ever indexed (rids are never reused)
        self.unsaved = 0  # changes since the index file was written
        self.rebuilt = False  # built or converted since the file was written: save it now
        self._not_deleted: tuple[Any, Any] | None = None  # (IDSelectorBatch, IDSelectorNot), kept alive
        self._flat_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see _flat_view

    # --- size -------------------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        return int(self.index.ntotal) - len(self.tombstones)

    def live_rids(self) -> np.ndarray:
        rids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        if self.tombstones:
            rids = rids[~np.isin(rids, np.fromiter(self.tombstones, dtype=np.int64))]
        return np.sort(rids)

    # --- building and syncing ---------------------------------------------------------------

    @classmethod
    def build(cls, source: VectorSource, identity: Identity, settings: IndexSettings) -> CollectionIndex:
        """Everything from the records (exact first; switched to HNSW if large enough)."""
        index = cls(identity, settings)
        index.version = source.version()
        for rids, vectors in source.vectors_after(0):
            index._add(rids, vectors)
        index._adapt()
        index.rebuilt = True
        return index

    def sync(self, source: VectorSource) -> bool:
        """Apply what changed since ``self.version``; cheap when nothing did. True if anything changed."""
        version = source.version()
        if version == self.version:
            return False
        added_rids: list[np.ndarray] = []
        added_vectors: list[np.ndarray] = []
        for rids, vectors in source.vectors_after(self.max_rid):
            added_rids.append(rids)
            added_vectors.append(vectors)
        added = sum(len(r) for r in added_rids)
        if source.count() != self.live_count + added:  # some indexed rids were deleted
            self._remove(np.setdiff1d(self.live_rids(), source.rids(), assume_unique=True))
        for rids, vectors in zip(added_rids, added_vectors, strict=True):
            self._add(rids, vectors)
        self.version = version
        self._adapt()
        return True

    def full_sync(self, source: VectorSource) -> None:
        """Make the index hold exactly the collection's rids (after loading a file of unknown age)."""
        version = source.version()
        if version == self.version:
            self._adapt()  # this process may use other settings than the one that saved it
            return
        current = source.rids()
        indexed = self.live_rids()
        self._remove(np.setdiff1d(indexed, current, assume_unique=True))
        missing = np.setdiff1d(current, indexed, assume_unique=True)
        for start in range(0, len(missing), CHUNK):
            self._add(*source.vectors_for(missing[start : start + CHUNK]))
        self.version = version
        self._adapt()

    def _add(self, rids: np.ndarray, vectors: np.ndarray) -> None:
        if len(rids):
            self._flat_cache = None  # the storage may move: drop the view before it dangles
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), rids.astype(np.int64))
            self.max_rid = max(self.max_rid, int(rids.max()))
            self.unsaved += len(rids)

    def _remove(self, rids: np.ndarray) -> None:
        if not len(rids):
            return
        self._flat_cache = None
        if self.kind == "hnsw":  # HNSW cannot remove: skip them at search time until compaction
            self.tombstones.update(int(r) for r in rids)
            self._not_deleted = None
        else:
            self.index.remove_ids(rids.astype(np.int64))
        self.unsaved += len(rids)

    def _adapt(self) -> None:
        """Switch between exact and HNSW, or rebuild the graph, as the size asks."""
        live, settings = self.live_count, self.settings
        if self.kind == "flat":
            if live > settings.hnsw_threshold and live >= self.hnsw_blocked_below:
                self._to_hnsw()
        elif live < settings.hnsw_threshold // 2:
            self._to_flat()
        elif len(self.tombstones) > settings.compact_ratio * self.index.ntotal:
            self._to_hnsw()  # compaction
        elif settings.ef_search is None and live >= 2 * self.calibrated_at:
            self._to_hnsw()  # doubled since efSearch was calibrated: rebuild and calibrate again

    def _live_chunks(self, rids: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(rids), CHUNK):
            chunk = rids[start : start + CHUNK]
            yield chunk, self.index.reconstruct_batch(chunk)

    def _to_hnsw(self) -> None:
        """Build the graph; calibrate efSearch on held-out records (inserted last) as queries.

        Held-out records are fresh draws from the collection itself, unseen by the graph while it
        is measured: an unbiased stand-in for queries on the same subject. (A record that is in the
        graph finds itself and its linked neighbours too easily and would flatter the recall.)
        """
        rids = self.live_rids()
        rng = np.random.default_rng(len(rids))  # deterministic per size: reproducible choices
        held = np.zeros(len(rids), dtype=bool)
        held[rng.choice(len(rids), size=min(CALIBRATION_QUERIES, len(rids) // 10), replace=False)] = True
        queries = self.index.reconstruct_batch(rids[held]) if held.any() else np.zeros((0, self.identity.dimensions))
        truth = _ExactTopK(queries.astype(np.float32), 10)
        graph = _new_hnsw(self.identity.dimensions, self.settings)
        for chunk, vectors in self._live_chunks(rids[~held]):
            graph.add_with_ids(vectors, chunk)
            truth.update(vectors, chunk)
        ceiling = self.settings.max_ef_search or min(4096, max(64, len(rids) // (6 * self.settings.hnsw_m)))
        ef = self.settings.ef_search or calibrate(graph, queries, *truth.ranked(), self.settings.target_recall, ceiling)
        if ef is None:
            log.info("HNSW misses recall %.2f at %d records: searching exactly", self.settings.target_recall, len(rids))
            self.hnsw_blocked_below = 2 * len(rids)
            self.rebuilt = True  # the stamp must remember not to try again
            if self.kind == "hnsw":
                self._to_flat()
            return
        if held.any():
            graph.add_with_ids(queries, rids[held])
        self._flat_cache = None
        self.index, self.kind, self.ef_search = graph, "hnsw", ef
        self.calibrated_at, self.tombstones, self._not_deleted = len(rids), set(), None
        self.rebuilt = True

    def _to_flat(self) -> None:
        flat = _new_flat(self.identity.dimensions)
        for chunk, vectors in self._live_chunks(self.live_rids()):
            flat.add_with_ids(vectors, chunk)
        self._flat_cache = None
        self.index, self.kind, self.tombstones, self._not_deleted = flat, "flat", set(), None
        self.rebuilt = True

    # --- searching --------------------------------------------------------------------------

    def _selector(self) -> Any | None:
        if not self.tombstones:
            return None
        if self._not_deleted is None:
            batch = faiss.IDSelectorBatch(np.fromiter(self.tombstones, dtype=np.int64))
            self._not_deleted = (batch, faiss.IDSelectorNot(batch))
        return self._not_deleted[1]

    def search(self, query: np.ndarray, k: int, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` (rids, inner products), best first; only among ``candidates`` when given."""
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if k <= 0 or self.live_count == 0 or (candidates is not None and len(candidates) == 0):
            return empty
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if candidates is not None:
            return self._search_among(query, k, np.asarray(candidates, dtype=np.int64))
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k), sel=self._selector())
            return self._hnsw_search(query, k, params)
        matrix, rids = self._flat_view()
        return top_k(matrix @ query, rids, k)

    def _flat_view(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact index's vectors (a zero-copy view of FAISS's storage) and their rids, in order.

        An exact scan is a matrix-vector product: numpy's BLAS sgemv does it 1.4-4x faster than
        IndexFlatIP for a single query (FAISS only uses BLAS from 20 queries up).
        """
        if self._flat_cache is None:
            storage = faiss.downcast_index(self.index.index)
            count, dimensions = int(storage.ntotal), int(storage.d)
            if count:
                matrix = faiss.rev_swig_ptr(storage.get_xb(), count * dimensions).reshape(count, dimensions)
            else:
                matrix = np.zeros((0, dimensions), dtype=np.float32)
            rids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            self._flat_cache = (matrix, rids, np.argsort(rids, kind="stable"))
        return self._flat_cache[0], self._flat_cache[1]

    def _hnsw_search(self, query: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        with faiss_threads(1):
            scores, ids = self.index.search(query.reshape(1, -1), k, params=params)
        found = ids[0] >= 0
        return ids[0][found], scores[0][found]

    def _search_among(self, query: np.ndarray, k: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Exact over the candidates' vectors, except on HNSW when most of the graph qualifies: then
        # the graph with a selector (its recall drops when the selector rejects most nodes).
        large = len(candidates) > max(self.settings.exact_filter_limit, 0.5 * self.live_count)
        if self.kind == "hnsw" and large:
            selector = faiss.IDSelectorBatch(candidates)
            params = faiss.SearchParametersHNSW(efSearch=max(2 * self.ef_search, k), sel=selector)
            ids, scores = self._hnsw_search(query, k, params)
            if len(ids) >= min(k, len(candidates)):
                return ids, scores
        best_ids, best_scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        for start in range(0, len(candidates), CHUNK):
            chunk, vectors = self._vectors_of(candidates[start : start + CHUNK])
            ids = np.concatenate([best_ids, chunk])
            scores = np.concatenate([best_scores, vectors @ query])
            best_ids, best_scores = top_k(scores, ids, k)
        return best_ids, best_scores

    def _vectors_of(self, rids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rids that are indexed, their vectors): a record whose stored vector is damaged is not."""
        if self.kind == "flat":
            matrix, indexed = self._flat_view()
            order = self._flat_cache[2]  # type: ignore[index]
            at = np.minimum(np.searchsorted(indexed, rids, sorter=order), len(order) - 1)
            positions = order[at]
            present = indexed[positions] == rids
            return rids[present], matrix[positions[present]]
        try:
            return rids, self.index.reconstruct_batch(rids)
        except RuntimeError:  # an id FAISS does not hold
            rids = rids[np.isin(rids, self.live_rids())]
            return rids, self.index.reconstruct_batch(rids)

    def vectors(self, rids: np.ndarray) -> np.ndarray:
        return self._vectors_of(np.asarray(rids, dtype=np.int64))[1]

    # --- files ------------------------------------------------------------------------------

    def _stamp(self) -> dict[str, Any]:
        return {
            "format": STAMP_FORMAT,
            **asdict(self.identity),
            "kind": self.kind,
            "version": self.version,
            "max_rid": self.max_rid,
            "ef_search": self.ef_search,
            "calibrated_at": self.calibrated_at,
            "hnsw_blocked_below": self.hnsw_blocked_below,
            "tombstones": sorted(self.tombstones),
        }

    def save(self, index_file: Path) -> None:
        """Write ``<name>.faiss`` then its stamp ``<name>.json`` (call under the collection's file lock)."""
        remove_stale_temps(index_file.parent, index_file.stem + ".")
        atomic_write(index_file, lambda temp: faiss.write_index(self.index, temp))
        stamp = self._stamp() | {"size": index_file.stat().st_size, "crc32": file_crc32(index_file)}
        atomic_write_bytes(stamp_file(index_file), json.dumps(stamp).encode())
        self.unsaved, self.rebuilt = 0, False

    @classmethod
    def load(cls, index_file: Path, identity: Identity, settings: IndexSettings) -> CollectionIndex | None:
        """The saved index if its stamp matches ``identity`` and its bytes their checksum, else None."""
        try:
            stamp = json.loads(stamp_file(index_file).read_text())
            if (
                stamp.get("format") != STAMP_FORMAT
                or Identity(stamp["uid"], stamp["embedder"], stamp["dimensions"]) != identity
            ):
                return None
            if index_file.stat().st_size != stamp["size"] or file_crc32(index_file) != stamp["crc32"]:
                log.warning("%s does not match its stamp: rebuilding it from the records", index_file)
                return None
            raw = faiss.read_index(str(index_file))
            loaded = cls(identity, settings, raw, stamp["kind"])
            if loaded.index.d != identity.dimensions:
                return None
            loaded.version, loaded.max_rid = int(stamp["version"]), int(stamp["max_rid"])
            loaded.ef_search = settings.ef_search or int(stamp["ef_search"])
            loaded.calibrated_at = int(stamp["calibrated_at"])
            loaded.hnsw_blocked_below = int(stamp["hnsw_blocked_below"])
            loaded.tombstones = {int(r) for r in stamp["tombstones"]}
            return loaded
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
            log.warning("%s is unreadable (%s): rebuilding it from the records", index_file, error)
            return None


def stamp_file(index_file: Path) -> Path:
    return index_file.with_suffix(".json")


def file_crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def calibrate(
    index: Any, queries: np.ndarray, truth_ids: np.ndarray, truth_scores: np.ndarray, recall: float, ceiling: int
) -> int | None:
    """Smallest efSearch whose recall@10 reaches the target (plus a margin), or None.

    ``truth_*``: the exact 10 best per query, best first. A returned hit counts if its score
    reaches the exact 10th best, so ties (duplicate texts) are not counted as misses.
    """
    target = min(1.0, recall + CALIBRATION_MARGIN)
    floors = truth_scores[:, -1:] - 1e-5 if truth_scores.size else None
    total = truth_ids.size
    if total == 0 or floors is None:
        return EF_STEPS[0]
    for ef in (e for e in EF_STEPS if e <= ceiling):
        scores, ids = index.search(queries, 10, params=faiss.SearchParametersHNSW(efSearch=ef))
        hits = int(((ids >= 0) & (scores >= floors)).sum())
        if hits / total >= target:
            return ef
    return None


def index_path(directory: Path, collection: str) -> Path:
    return directory / f"{collection}.faiss"


def remove_index_files(directory: Path, collection: str) -> None:
    path = index_path(directory, collection)
    for file in (path, stamp_file(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(file)
