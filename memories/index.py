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
neighbourhood structure), HNSW is not tried again before the collection doubles.

Then (``pq_fallback``) the exact index gets a companion: an ``IndexPQFastScan`` of 4-bit product
quantisation codes (``d / 2`` sub-quantisers: 96 bytes per 384-d vector, 1/16 of the floats) that
proposes ``max(k, 10) * k_factor`` candidates, re-ranked exactly from the flat index's vectors. It is
calibrated like efSearch (the smallest ``k_factor`` reaching the target on held-out records, then one
step more); if none does, the collection stays exact. The flat index stays the source of vectors and
of truth: a PQ candidate it no longer holds (a deleted record) is dropped by the re-rank.
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
# Format 2: a "pq" index, whose file is the flat index followed by the PQ index (at "pq_offset").
# Only PQ-backed collections use it, so a process of the previous version rebuilds those alone.
STAMP_FORMAT_PQ = 2
CHUNK = 50_000  # rows per batch when streaming vectors (bounded memory)
CALIBRATION_QUERIES = 150
# efSearch values tried, from a floor of 64: below it the saving is small and queries unlike the
# stored vectors (an outlier record, a vague question) start to miss.
EF_STEPS = (64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
# A recall measured on 150 queries x 10 hits has a standard error of ~0.006 near 0.95: the target
# plus 0.01 makes a true recall below the target unlikely (~5 %) without demanding the impossible of
# graphs whose recall levels off just under 0.98 (1M clustered vectors, docs/memory.md).
CALIBRATION_MARGIN = 0.01
# Candidates per wanted hit tried for a PQ-backed collection (10 * k_factor candidates for a top 10).
K_FACTOR_STEPS = (4, 6, 8, 12, 16, 24, 32, 48, 64)
PQ_TRAINING_SAMPLE = 10_000  # vectors the quantiser is trained on: 10k generalises to 1M (docs/memory.md)
PQ_MIN_TRAINING = 256  # 4-bit codes have 16 centroids per sub-quantiser; FAISS refuses fewer than 16 points
PQ_BLOCK = 64  # FastScan block size (bbs); see _remove for why it matters


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
    compact_ratio: float = 0.2  # rebuild an HNSW graph (re-encode PQ codes) when this share of it is deleted
    # When HNSW misses the target (uniform-like data), scan 4-bit PQ codes and re-rank exactly, if
    # that reaches the target; else stay exact.
    pq_fallback: bool = True
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


def pq_subquantizers(dimensions: int) -> int:
    """Sub-quantisers for 4-bit codes: 2 dimensions each (d / 2), or the nearest coarser divisor of d."""
    return max(m for m in range(1, max(1, dimensions // 2) + 1) if dimensions % m == 0)


def _new_pq(dimensions: int) -> Any:
    fast_scan = faiss.IndexPQFastScan(dimensions, pq_subquantizers(dimensions), 4, faiss.METRIC_INNER_PRODUCT, PQ_BLOCK)
    return faiss.IndexIDMap2(fast_scan)


def _kth_best(queries: np.ndarray, matrix: np.ndarray, excluded: np.ndarray, k: int) -> np.ndarray:
    """Each query's k-th best inner product over the rows of ``matrix`` not ``excluded``."""
    best = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    for start in range(0, len(matrix), CHUNK):
        scores = queries @ matrix[start : start + CHUNK].T
        scores[:, excluded[start : start + CHUNK]] = -np.inf
        best = np.concatenate([best, scores], axis=1)
        if best.shape[1] > k:
            best = -np.partition(-best, k - 1, axis=1)[:, :k]
    return best.min(axis=1)


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
        self.pq_blocked_below = 0  # likewise the PQ scan
        self.coarse: Any | None = None  # kind "pq": the IndexIDMap2(IndexPQFastScan) beside the flat index
        self.k_factor = 0  # kind "pq": candidates per wanted hit (calibrated)
        self.coarse_dead = 0  # kind "pq": codes of deleted records still in self.coarse
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
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self.index.add_with_ids(vectors, rids.astype(np.int64))
            if self.coarse is not None:
                self.coarse.add_with_ids(vectors, rids.astype(np.int64))
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
            # FAISS 1.15.1 bug: IndexPQFastScan.remove_ids corrupts the codes it keeps when bbs != 32
            # (the surviving vectors then score as other vectors; bbs 32 is fine). So the PQ codes of
            # deleted records stay as tombstones: the exact re-rank drops every candidate the flat
            # index no longer holds, and past compact_ratio the codes are re-encoded without them.
            # Tested by test_pq_collection_never_returns_deleted_records.
            if self.coarse is not None:
                self.coarse_dead += len(rids)
        self.unsaved += len(rids)

    def _adapt(self) -> None:
        """Switch between exact, HNSW and PQ-backed exact, or rebuild, as the size asks."""
        live, settings = self.live_count, self.settings
        if self.kind == "hnsw":
            if live < settings.hnsw_threshold // 2:
                self._to_flat()
            elif len(self.tombstones) > settings.compact_ratio * self.index.ntotal:
                self._reindex()  # compaction
            elif settings.ef_search is None and live >= 2 * self.calibrated_at:
                self._reindex()  # doubled since efSearch was calibrated: rebuild and calibrate again
        elif self.kind == "pq":
            if live < settings.hnsw_threshold // 2 or not settings.pq_fallback:
                self._drop_coarse()
            elif live >= 2 * self.calibrated_at:
                self._reindex()  # doubled since k_factor was calibrated: HNSW may work now, else retrain
            elif self.coarse is not None and self.coarse_dead > settings.compact_ratio * self.coarse.ntotal:
                self._compact_coarse()
        elif live > settings.hnsw_threshold and (
            live >= self.hnsw_blocked_below or (settings.pq_fallback and live >= self.pq_blocked_below)
        ):
            self._reindex()

    def _reindex(self) -> None:
        """HNSW if it reaches the recall target, else PQ-backed exact if that does, else exact."""
        live = self.live_count
        if live >= self.hnsw_blocked_below and self._to_hnsw():
            return
        if self.kind == "hnsw":
            self._to_flat()
        if self.settings.pq_fallback and live >= self.pq_blocked_below and self._to_pq():
            return
        self._drop_coarse()

    def _live_chunks(self, rids: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(rids), CHUNK):
            chunk = rids[start : start + CHUNK]
            yield chunk, self.index.reconstruct_batch(chunk)

    def _to_hnsw(self) -> bool:
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
            return self._hnsw_rejected(len(rids))
        if held.any():
            graph.add_with_ids(queries, rids[held])
        self._flat_cache = None
        self.index, self.kind, self.ef_search = graph, "hnsw", ef
        self.calibrated_at, self.tombstones, self._not_deleted = len(rids), set(), None
        self.coarse, self.coarse_dead, self.hnsw_blocked_below = None, 0, 0
        self.rebuilt = True
        return True

    def _hnsw_rejected(self, count: int) -> bool:
        log.info("HNSW misses recall %.2f at %d records", self.settings.target_recall, count)
        self.hnsw_blocked_below = 2 * count
        self.rebuilt = True  # the stamp must remember not to try again
        return False

    def _to_pq(self) -> bool:
        """Give the exact index a PQ FastScan companion if its calibrated k_factor reaches the target.

        The same protocol as efSearch: held-out records (added last) are the queries, the truth is
        their exact top 10 among the others. The smallest k_factor reaching target + margin is
        taken one step further: on uniform data at 100k the held-out recall ran ~0.01 above that
        of fresh queries once, and a step costs ~0.1-0.3 ms.
        """
        matrix, rids = self._flat_view()  # kind "flat" here
        count, dimensions = len(rids), self.identity.dimensions
        rng = np.random.default_rng(count)
        held = np.zeros(count, dtype=bool)
        held[rng.choice(count, size=min(CALIBRATION_QUERIES, count // 10), replace=False)] = True
        if not held.any():
            return False
        queries = matrix[held]
        floors = _kth_best(queries, matrix, held, 10) - 1e-5
        others = np.flatnonzero(~held)
        if len(others) < PQ_MIN_TRAINING:  # too few to train 16 centroids per sub-quantiser: stay exact
            self.pq_blocked_below = 2 * count
            return False
        coarse = _new_pq(dimensions)
        training = np.sort(rng.choice(others, size=min(PQ_TRAINING_SAMPLE, len(others)), replace=False))
        # One thread: the quantiser's 192 small k-means runs each fork OpenMP workers; with a second
        # busy core that took 50-60 s for 10k vectors instead of 2-3 s.
        with faiss_threads(1):
            coarse.train(matrix[training])
        for start in range(0, count, CHUNK):
            keep = ~held[start : start + CHUNK]
            coarse.add_with_ids(matrix[start : start + CHUNK][keep], rids[start : start + CHUNK][keep])
        k_factor = calibrate_k_factor(coarse, queries, floors, self._vectors_of, self.settings.target_recall)
        if k_factor is None:
            log.info("PQ misses recall %.2f at %d records: searching exactly", self.settings.target_recall, count)
            self.pq_blocked_below = 2 * count
            self.rebuilt = True
            return False
        coarse.add_with_ids(queries, rids[held])
        self.coarse, self.kind, self.k_factor, self.coarse_dead = coarse, "pq", k_factor, 0
        self.calibrated_at, self.pq_blocked_below, self.rebuilt = count, 0, True
        return True

    def _compact_coarse(self) -> None:
        """Re-encode the live rows with the trained quantiser (no retraining): tombstones gone."""
        assert self.coarse is not None
        fresh = faiss.clone_index(self.coarse)
        fresh.reset()  # keeps the training
        matrix, rids = self._flat_view()
        for start in range(0, len(rids), CHUNK):
            fresh.add_with_ids(matrix[start : start + CHUNK], rids[start : start + CHUNK])
        self.coarse, self.coarse_dead, self.rebuilt = fresh, 0, True

    def _drop_coarse(self) -> None:
        if self.coarse is not None:
            self.coarse, self.kind, self.coarse_dead, self.rebuilt = None, "flat", 0, True

    def _to_flat(self) -> None:
        flat = _new_flat(self.identity.dimensions)
        for chunk, vectors in self._live_chunks(self.live_rids()):
            flat.add_with_ids(vectors, chunk)
        self._flat_cache = None
        self.index, self.kind, self.tombstones, self._not_deleted = flat, "flat", set(), None
        self.coarse, self.coarse_dead = None, 0
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
            # faiss's SWIG bindings define this at import time: pyright cannot see it.
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k), sel=self._selector())  # pyright: ignore[reportAttributeAccessIssue]
            return self._hnsw_search(query, k, params)
        if self.coarse is not None:
            return self._pq_search(query, k)
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
                # faiss's SWIG bindings define this at import time: pyright cannot see it.
                matrix = faiss.rev_swig_ptr(storage.get_xb(), count * dimensions).reshape(count, dimensions)  # pyright: ignore[reportAttributeAccessIssue]
            else:
                matrix = np.zeros((0, dimensions), dtype=np.float32)
            rids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            self._flat_cache = (matrix, rids, np.argsort(rids, kind="stable"))
        return self._flat_cache[0], self._flat_cache[1]

    def _pq_search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """PQ codes propose candidates, the flat index's vectors rank them exactly."""
        assert self.coarse is not None
        codes = int(self.coarse.ntotal)
        enough = max(k, 10) * self.k_factor
        # Tombstones take candidate slots: ask for proportionally more while they are there.
        wanted = min(codes, int(np.ceil(enough * codes / max(1, self.live_count))))
        while True:
            with faiss_threads(1):
                _, found = self.coarse.search(query.reshape(1, -1), wanted)
            rids, vectors = self._vectors_of(found[0][found[0] >= 0])  # drops deleted records
            # Tombstones are not spread evenly: a document saved again and again leaves copies of its
            # own codes right where its queries look. Widen until enough live candidates are left.
            if len(rids) >= min(enough, self.live_count) or wanted >= codes:
                return top_k(vectors @ query, rids, k)
            wanted = min(codes, 2 * wanted)

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
            # faiss's SWIG bindings define this at import time: pyright cannot see it.
            params = faiss.SearchParametersHNSW(efSearch=max(2 * self.ef_search, k), sel=selector)  # pyright: ignore[reportAttributeAccessIssue]
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
        if self.kind != "hnsw":
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

    def describe(self) -> dict[str, Any]:
        """The index state for ``stats()``: JSON-friendly."""
        coarse = self.coarse  # read once: another thread may drop it meanwhile
        return {
            "kind": self.kind,
            "vectors": int(self.index.ntotal),
            "deleted_pending_compaction": len(self.tombstones),
            "ef_search": self.ef_search if self.kind == "hnsw" else None,
            "k_factor": self.k_factor if self.kind == "pq" else None,
            "pq_codes": int(coarse.ntotal) if coarse is not None else None,
            "pq_deleted_pending_compaction": self.coarse_dead if coarse is not None else None,
        }

    # --- files ------------------------------------------------------------------------------

    def _stamp(self) -> dict[str, Any]:
        return {
            "format": STAMP_FORMAT_PQ if self.coarse is not None else STAMP_FORMAT,
            **asdict(self.identity),
            "kind": self.kind,
            "version": self.version,
            "max_rid": self.max_rid,
            "ef_search": self.ef_search,
            "calibrated_at": self.calibrated_at,
            "hnsw_blocked_below": self.hnsw_blocked_below,
            "pq_blocked_below": self.pq_blocked_below,
            "k_factor": self.k_factor,
            "pq_dead": self.coarse_dead,
            "tombstones": sorted(self.tombstones),
        }

    def save(self, index_file: Path) -> None:
        """Write ``<name>.faiss`` then its stamp ``<name>.json`` (call under the collection's file lock)."""
        remove_stale_temps(index_file.parent, index_file.stem + ".")
        pq_offset = 0

        def write(temp: str) -> None:
            nonlocal pq_offset
            faiss.write_index(self.index, temp)
            if self.coarse is not None:  # one file, one checksum: the two can never be out of step
                pq_offset = os.path.getsize(temp)
                with open(temp, "ab") as handle:
                    handle.write(faiss.serialize_index(self.coarse).tobytes())

        atomic_write(index_file, write)
        stamp = self._stamp() | {"size": index_file.stat().st_size, "crc32": file_crc32(index_file)}
        if self.coarse is not None:
            stamp["pq_offset"] = pq_offset
        atomic_write_bytes(stamp_file(index_file), json.dumps(stamp).encode())
        self.unsaved, self.rebuilt = 0, False

    @classmethod
    def load(cls, index_file: Path, identity: Identity, settings: IndexSettings) -> CollectionIndex | None:
        """The saved index if its stamp matches ``identity`` and its bytes their checksum, else None."""
        try:
            stamp = json.loads(stamp_file(index_file).read_text())
            if (
                stamp.get("format") not in (STAMP_FORMAT, STAMP_FORMAT_PQ)
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
            loaded.pq_blocked_below = int(stamp.get("pq_blocked_below", 0))
            if stamp["kind"] == "pq":
                with open(index_file, "rb") as handle:  # faiss.read_index stopped where the flat index ends
                    handle.seek(int(stamp["pq_offset"]))
                    loaded.coarse = faiss.deserialize_index(np.frombuffer(handle.read(), dtype=np.uint8))
                loaded.k_factor, loaded.coarse_dead = int(stamp["k_factor"]), int(stamp["pq_dead"])
                if loaded.coarse.d != identity.dimensions:
                    return None
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
        # faiss's SWIG bindings define this at import time: pyright cannot see it.
        scores, ids = index.search(queries, 10, params=faiss.SearchParametersHNSW(efSearch=ef))  # pyright: ignore[reportAttributeAccessIssue]
        hits = int(((ids >= 0) & (scores >= floors)).sum())
        if hits / total >= target:
            return ef
    return None


def calibrate_k_factor(
    coarse: Any, queries: np.ndarray, floors: np.ndarray, vectors_of: Any, recall: float
) -> int | None:
    """k_factor for a PQ coarse scan + exact re-rank: one step above the smallest reaching the target.

    ``floors``: each query's exact 10th best score (minus a tolerance); a re-ranked hit counts if it
    reaches it. The coarse ranking of ``10 * step`` candidates is a prefix of the largest one, so
    one search serves every step.
    """
    target = min(1.0, recall + CALIBRATION_MARGIN)
    widest = min(int(coarse.ntotal), 10 * K_FACTOR_STEPS[-1])
    _, found = coarse.search(queries, widest)
    reached = np.zeros((len(queries), widest), dtype=bool)  # candidate j of query i reaches its floor
    for i, query in enumerate(queries):
        valid = np.flatnonzero(found[i] >= 0)
        rids, vectors = vectors_of(found[i][valid])
        reached[i, valid] = np.isin(found[i][valid], rids[vectors @ query >= floors[i]])
    for position, step in enumerate(K_FACTOR_STEPS):
        hits = np.minimum(reached[:, : 10 * step].sum(axis=1), 10).sum()
        if hits / (10 * len(queries)) >= target:
            return K_FACTOR_STEPS[min(position + 1, len(K_FACTOR_STEPS) - 1)]
    return None


def index_path(directory: Path, collection: str) -> Path:
    return directory / f"{collection}.faiss"


def remove_index_files(directory: Path, collection: str) -> None:
    path = index_path(directory, collection)
    for file in (path, stamp_file(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(file)
