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
from tests.conftest import cli_env


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
