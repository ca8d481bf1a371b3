"""The derived FAISS index: HNSW recall, deletions and compaction, persistence, damaged index files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memories import HashingEmbedder, MemoryStore
from memories.embedders import normalize_rows
from memories.index import CollectionIndex, IndexSettings
from tests.support.cli import cli_env


class VectorsOnly:
    """An embedder for stores fed precomputed vectors (random 384-d, like the benchmark)."""

    name = "vectors-384"
    dimensions = 384

    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("this store only takes precomputed vectors")


def recall_at_10(store: MemoryStore, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray) -> float:
    hits = 0
    for query in queries:
        exact = set(ids[np.argsort(-(vectors @ query))[:10]].tolist())
        found = {h.record.id for h in store.search("random", query, limit=10, min_relevance=-1.0)}
        hits += len(exact & found)
    return hits / (10 * len(queries))


def index_of(store: MemoryStore) -> dict:
    return store.stats()["collections"][0]["index"]


def test_hnsw_above_threshold_keeps_recall_through_deletes_and_compaction(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = normalize_rows(rng.standard_normal((5000, 384)))
    ids = np.array([f"r{i}" for i in range(len(vectors))])
    queries = normalize_rows(rng.standard_normal((60, 384)))
    # At 5k an exact scan is cheap enough that the automatic efSearch ceiling (n / 6M = 26) would
    # keep the collection exact: allow up to 512 to exercise the graph.
    settings = IndexSettings(hnsw_threshold=1000, max_ef_search=512)
    with MemoryStore(tmp_path / "mem", VectorsOnly(), index_settings=settings) as store:
        store.save_many("random", [{"id": i, "text": i, "embedding": v} for i, v in zip(ids, vectors, strict=True)])
        assert recall_at_10(store, vectors, ids, queries) >= 0.95
        index = index_of(store)
        assert index["kind"] == "hnsw" and index["vectors"] == 5000 and 64 <= index["ef_search"] <= 512

        # Deletions become tombstones: never returned, recall measured against what is left.
        gone = rng.choice(len(ids), size=600, replace=False)
        assert store.delete("random", ids[gone].tolist()) == 600
        keep = np.setdiff1d(np.arange(len(ids)), gone)
        assert recall_at_10(store, vectors[keep], ids[keep], queries) >= 0.95
        assert index_of(store)["deleted_pending_compaction"] == 600
        returned = {h.record.id for q in queries[:20] for h in store.search("random", q, limit=50, min_relevance=-1)}
        assert not returned & set(ids[gone].tolist())

        # Past 20 % deleted the graph is rebuilt without them.
        more = keep[:800]
        store.delete("random", ids[more].tolist())
        keep = np.setdiff1d(keep, more)
        assert recall_at_10(store, vectors[keep], ids[keep], queries) >= 0.95
        index = index_of(store)
        assert index["kind"] == "hnsw" and index["deleted_pending_compaction"] == 0 and index["vectors"] == len(keep)

        # Below half the threshold the collection goes back to exact search.
        store.delete("random", ids[keep[:3200]].tolist())
        keep = keep[3200:]
        assert recall_at_10(store, vectors[keep], ids[keep], queries[:10]) == 1.0
        assert index_of(store)["kind"] == "flat"


def test_filtered_search_on_hnsw_returns_every_match(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors = normalize_rows(rng.standard_normal((1500, 384)))
    items = [
        {"id": f"r{i}", "text": "x", "embedding": v, "metadata": {"group": i % 100}} for i, v in enumerate(vectors)
    ]
    settings = IndexSettings(hnsw_threshold=500, max_ef_search=512)
    with MemoryStore(tmp_path / "mem", VectorsOnly(), index_settings=settings) as store:
        store.save_many("random", items)
        query = vectors[0]
        hits = store.search("random", query, limit=20, min_relevance=-1, where={"group": 7})
        assert len(hits) == 15 and {h.record.metadata["group"] for h in hits} == {7}
        exact = [f"r{i}" for i in sorted(range(7, 1500, 100), key=lambda i: -float(vectors[i] @ query))]
        assert [h.record.id for h in hits] == exact
        assert index_of(store)["kind"] == "hnsw"


def test_index_file_is_reused_not_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        store.save_many("notes", [f"note number {i} on dough" for i in range(200)])
        expected = [h.record.id for h in store.search("notes", "note number 7", limit=5)]
    assert (tmp_path / "mem" / "index" / "notes.faiss").exists()
    assert json.loads((tmp_path / "mem" / "index" / "notes.json").read_text())["kind"] == "flat"

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the saved index should have been loaded")

    monkeypatch.setattr(CollectionIndex, "build", classmethod(no_build))
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        assert [h.record.id for h in store.search("notes", "note number 7", limit=5)] == expected
        store.save("notes", "a new note about the oven", id="new")  # loaded file + incremental sync
        assert store.search("notes", "a new note about the oven", limit=1)[0].record.id == "new"


@pytest.mark.parametrize("damage", ["deleted", "garbled", "truncated", "stamp-garbled", "stamp-missing"])
def test_damaged_index_file_is_rebuilt_transparently(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        store.save_many("notes", [f"note number {i} on dough and sauce" for i in range(300)])
        expected = [h.record.id for h in store.search("notes", "note number 42", limit=5)]
    index_file = tmp_path / "mem" / "index" / "notes.faiss"
    stamp = index_file.with_suffix(".json")
    data = bytearray(index_file.read_bytes())
    if damage == "deleted":
        index_file.unlink()
    elif damage == "garbled":
        middle = len(data) // 2  # inside the vectors: faiss would read it without complaint
        data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        index_file.write_bytes(bytes(data))
    elif damage == "truncated":
        index_file.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "stamp-garbled":
        stamp.write_text("{not json")
    else:
        stamp.unlink()
    caplog.set_level(logging.WARNING, logger="memories")
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        assert [h.record.id for h in store.search("notes", "note number 42", limit=5)] == expected
    assert index_file.exists() and json.loads(stamp.read_text())["crc32"]


CHILD_WRITER = """
import sys
from memories import HashingEmbedder, MemoryStore
with MemoryStore(sys.argv[1], HashingEmbedder(64)) as store:
    store.save("notes", "the freshly written record about espresso", id="fresh")
    print(store.delete("notes", ["old"]))
"""


@pytest.mark.e2e
def test_writes_of_another_process_are_seen_by_an_open_store(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        store.save_many("notes", [{"id": "old", "text": "an old record about espresso"}, "unrelated text on rent"])
        assert store.search("notes", "espresso", limit=1)[0].record.id == "old"  # index now cached
        done = subprocess.run(
            [sys.executable, "-c", CHILD_WRITER, str(tmp_path / "mem")],
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
            check=True,
        )
        assert done.stdout.strip() == "1"
        hits = store.search("notes", "the freshly written record about espresso", limit=5)
        assert hits[0].record.id == "fresh" and "old" not in [h.record.id for h in hits]
        assert store.count("notes") == 2


# --- PQ-backed exact search: uniform data, where HNSW misses the recall target ------------------

# A small, cheap graph: on uniform vectors it misses the target at efSearch 64 (the only step below
# the automatic ceiling at this size) whatever its parameters, so the collection falls back to PQ.
PQ_SETTINGS = IndexSettings(hnsw_threshold=1000, hnsw_m=8, ef_construction=16)


def uniform_pq_store(path: Path, count: int, seed: int) -> tuple[MemoryStore, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = normalize_rows(rng.standard_normal((count, 384)))
    ids = np.array([f"r{i}" for i in range(count)])
    store = MemoryStore(path, VectorsOnly(), index_settings=PQ_SETTINGS)
    store.save_many("random", [{"id": i, "text": i, "embedding": v} for i, v in zip(ids, vectors, strict=True)])
    return store, vectors, ids


def returned_ids(store: MemoryStore, queries: np.ndarray, limit: int = 50) -> set[str]:
    return {h.record.id for q in queries for h in store.search("random", q, limit=limit, min_relevance=-1)}


def test_uniform_collection_gets_pq_candidates_reranked_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = normalize_rows(np.random.default_rng(11).standard_normal((60, 384)))
    store, vectors, ids = uniform_pq_store(tmp_path / "mem", 4000, seed=7)
    with store:
        assert recall_at_10(store, vectors, ids, queries) >= 0.95
        index = index_of(store)
        assert index["kind"] == "pq" and index["vectors"] == index["pq_codes"] == 4000
        assert index["k_factor"] in (4, 6, 8, 12, 16, 24, 32, 48, 64)
        # Relevance is the exact cosine (the re-rank), not the PQ estimate.
        hit = store.search("random", vectors[17], limit=1, min_relevance=-1)[0]
        assert hit.record.id == "r17" and hit.relevance == pytest.approx(1.0, abs=1e-5)

        # A re-upsert gets a new rid: found under its new vector, no longer under its old one.
        fresh = normalize_rows(np.random.default_rng(12).standard_normal((1, 384)))[0]
        store.save("random", "moved", id="r17", embedding=fresh)
        hit = store.search("random", fresh, limit=1, min_relevance=-1)[0]
        assert hit.record.id == "r17" and hit.relevance == pytest.approx(1.0, abs=1e-5)
        assert store.search("random", vectors[17], limit=1, min_relevance=-1)[0].relevance < 0.5
        vectors[17] = fresh
        assert index_of(store)["pq_deleted_pending_compaction"] == 1  # the old rid's code

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the saved index (flat + PQ in one file) should have been loaded")

    monkeypatch.setattr(CollectionIndex, "build", classmethod(no_build))
    with MemoryStore(tmp_path / "mem", VectorsOnly(), index_settings=PQ_SETTINGS) as store:
        reloaded = index_of(store)
        assert (reloaded["kind"], reloaded["k_factor"], reloaded["vectors"]) == ("pq", index["k_factor"], 4000)
        assert (reloaded["pq_codes"], reloaded["pq_deleted_pending_compaction"]) == (4001, 1)
        assert recall_at_10(store, vectors, ids, queries) >= 0.95
        assert store.search("random", fresh, limit=1, min_relevance=-1)[0].record.id == "r17"
        # Filtered searches stay exact over the matching records.
        hits = store.search("random", queries[0], limit=5, min_relevance=-1, where={"missing": {"exists": False}})
        assert [h.record.id for h in hits] == ids[np.argsort(-(vectors @ queries[0]))[:5]].tolist()
    assert json.loads((tmp_path / "mem" / "index" / "random.json").read_text())["kind"] == "pq"

    # Without the fallback the same collection is searched exactly.
    settings = IndexSettings(hnsw_threshold=1000, hnsw_m=8, ef_construction=16, pq_fallback=False)
    monkeypatch.undo()
    with MemoryStore(tmp_path / "mem", VectorsOnly(), index_settings=settings) as store:
        assert index_of(store)["kind"] == "flat"
        assert recall_at_10(store, vectors, ids, queries[:10]) == 1.0


def test_pq_collection_never_returns_deleted_records(tmp_path: Path) -> None:
    # FAISS 1.15.1's IndexPQFastScan.remove_ids corrupts codes (bbs 64): deleted records' codes
    # stay as tombstones, dropped by the exact re-rank, and are re-encoded away past compact_ratio.
    queries = normalize_rows(np.random.default_rng(13).standard_normal((40, 384)))
    store, vectors, ids = uniform_pq_store(tmp_path / "mem", 4000, seed=8)
    rng = np.random.default_rng(9)
    with store:
        assert index_of(store)["kind"] == "pq"
        gone = rng.choice(len(ids), size=500, replace=False)
        assert store.delete("random", ids[gone].tolist()) == 500
        keep = np.setdiff1d(np.arange(len(ids)), gone)
        index = index_of(store)
        assert index["vectors"] == 3500 and index["pq_codes"] == 4000 and index["pq_deleted_pending_compaction"] == 500
        # A deleted record's own vector is the surest way to meet its code: still never returned.
        assert not returned_ids(store, vectors[gone[:40]]) & set(ids[gone].tolist())
        assert not returned_ids(store, queries) & set(ids[gone].tolist())
        assert recall_at_10(store, vectors[keep], ids[keep], queries) >= 0.95

    with MemoryStore(tmp_path / "mem", VectorsOnly(), index_settings=PQ_SETTINGS) as store:
        assert index_of(store)["pq_deleted_pending_compaction"] == 500  # tombstones persist
        assert not returned_ids(store, vectors[gone[:20]]) & set(ids[gone].tolist())
        # Past 20 % of the codes deleted, they are re-encoded from the live vectors (no retraining).
        more = keep[:400]
        store.delete("random", ids[more].tolist())
        gone, keep = np.concatenate([gone, more]), np.setdiff1d(keep, more)
        index = index_of(store)
        assert index["kind"] == "pq" and index["pq_deleted_pending_compaction"] == 0
        assert index["vectors"] == index["pq_codes"] == len(keep) == 3100
        assert not returned_ids(store, vectors[gone[-40:]]) & set(ids[gone].tolist())
        assert recall_at_10(store, vectors[keep], ids[keep], queries) >= 0.95

        # Below half the threshold the codes are dropped: exact search.
        store.delete("random", ids[keep[:2700]].tolist())
        keep = keep[2700:]
        assert index_of(store)["kind"] == "flat"
        assert recall_at_10(store, vectors[keep], ids[keep], queries[:10]) == 1.0


def test_a_document_saved_again_and_again_stays_findable_on_pq(tmp_path: Path) -> None:
    """Re-saving a document's chunks leaves copies of its codes as tombstones right where its queries look."""
    rng = np.random.default_rng(5)
    center = normalize_rows(rng.standard_normal((1, 384)))[0]
    document = normalize_rows(center + 0.12 * rng.standard_normal((30, 384)))
    queries = normalize_rows(center + 0.12 * rng.standard_normal((10, 384)))
    store, vectors, ids = uniform_pq_store(tmp_path / "mem", 4000, seed=5)
    with store:
        doc_ids = [f"doc#{i}" for i in range(30)]
        for version in range(12):  # each save replaces all 30 rows; a search between saves syncs the index
            store.save_many(
                "random",
                [{"id": d, "text": f"v{version}", "embedding": v} for d, v in zip(doc_ids, document, strict=True)],
            )
            store.search("random", queries[0], limit=1)
        index = index_of(store)
        assert index["kind"] == "pq" and index["pq_deleted_pending_compaction"] >= 300  # not compacted yet
        all_ids, all_vectors = np.concatenate([ids, doc_ids]), np.vstack([vectors, document])
        assert recall_at_10(store, all_vectors, all_ids, queries) >= 0.95


def test_too_few_records_to_train_pq_stay_exact(tmp_path: Path) -> None:
    # max_ef_search below the first step rejects HNSW at once, so a tiny collection reaches the PQ stage.
    settings = IndexSettings(hnsw_threshold=10, max_ef_search=48)
    vectors = normalize_rows(np.random.default_rng(3).standard_normal((12, 384)))
    with MemoryStore(tmp_path / "mem", VectorsOnly(), index_settings=settings) as store:
        store.save_many("random", [{"id": f"r{i}", "text": "x", "embedding": v} for i, v in enumerate(vectors)])
        assert store.search("random", vectors[3], limit=1)[0].record.id == "r3"
        assert index_of(store)["kind"] == "flat"
