"""The memory store's contract, run on both backends: local files (SQLite + FAISS) and PostgreSQL + pgvector.

Each test gets an empty store of each kind (``store`` is parametrized); the PostgreSQL one lives in a
fresh database on the embedded server of tests/support/postgres.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memories import (
    CollectionNotFoundError,
    EmbedderMismatchError,
    HashingEmbedder,
    MemoryRecord,
    MemoryUsageError,
    open_store,
)
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

StoreFactory = Callable[..., Any]


@pytest.fixture(params=["local", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """``open_backend(embedder)``: a store of the parametrized backend (the same one on every call)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened: list[Any] = []

    def factory(embedder: Any = None) -> Any:
        store = open_store(tmp_path / "memory", database_url=url, embedder=embedder or HashingEmbedder(64))
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_backend: StoreFactory) -> Any:
    return open_backend()


def test_the_factory_picks_the_backend_the_setting_names(store: Any, request: pytest.FixtureRequest) -> None:
    expected = request.node.callspec.params["open_backend"]
    assert store.backend == expected
    assert store.stats()["backend"] == expected


def test_save_get_and_upsert_by_id_keep_created_at(store: Any) -> None:
    first = store.save("notes", "the oven is too small", id="a", description="kitchen", metadata={"year": 2024})
    assert first == "a"
    before = store.get("notes", "a")
    assert (before.text, before.description, before.metadata) == ("the oven is too small", "kitchen", {"year": 2024})
    store.save("notes", "the oven was replaced", id="a", metadata={"year": 2025})
    after = store.get("notes", "a")
    assert (after.text, after.metadata) == ("the oven was replaced", {"year": 2025})
    assert after.created_at == before.created_at and after.updated_at >= before.updated_at
    assert store.count("notes") == 1
    assert store.get("notes", "missing") is None


@pytest.mark.parametrize("size", [3, 600])  # 600: PostgreSQL's bulk path (COPY), at and above 500 records
def test_keep_times_stores_the_records_own_times(store: Any, size: int) -> None:
    """What ``memory migrate`` saves: the source's created and updated times, not the copy's."""
    created = datetime(2024, 3, 1, 9, 30, 0, 250_000, tzinfo=timezone.utc)
    updated = datetime(2025, 1, 2, 17, 0, 0, 125_000, tzinfo=timezone.utc)
    store.save("kept", "already here", id="r0")  # an upsert keeps the given creation time too
    items = [{"text": f"t{i}", "id": f"r{i}", "created_at": created, "updated_at": updated} for i in range(size)]
    items[1] = MemoryRecord("r1", "no times given", created_at=None, updated_at=None)
    store.save_many("kept", items, keep_times=True)
    records = {r.id: r for r in store.get_many("kept", ["r0", "r1", "r2"])}
    for record in (records["r0"], records["r2"]):
        assert abs((record.created_at - created).total_seconds()) < 1e-3
        assert abs((record.updated_at - updated).total_seconds()) < 1e-3
    assert records["r1"].created_at > updated  # not given: the save's time
    store.save("kept", "edited", id="r2")  # a later save without keep_times: updated now, created kept
    edited = store.get("kept", "r2")
    assert abs((edited.created_at - created).total_seconds()) < 1e-3 and edited.updated_at > updated
    with pytest.raises(MemoryUsageError, match="record 'x': created_at must be a datetime, not str"):
        store.save_many("kept", [{"text": "t", "id": "x", "created_at": "2024-03-01"}], keep_times=True)


def test_save_many_get_many_in_asked_order_and_replacing(store: Any) -> None:
    ids = store.save_many("docs", [{"text": f"chunk {i}", "id": f"doc#{i}"} for i in range(4)])
    assert ids == ["doc#0", "doc#1", "doc#2", "doc#3"]
    assert [r.id for r in store.get_many("docs", ["doc#2", "nope", "doc#0"])] == ["doc#2", "doc#0"]
    # Re-ingesting the document: two chunks now, the old ones go in the same transaction.
    store.save_many("docs", [{"text": "new 0", "id": "doc#0"}, {"text": "new 1", "id": "doc#1"}], replacing=ids)
    assert sorted(r.id for r in store.list("docs", limit=None)) == ["doc#0", "doc#1"]
    assert store.get("docs", "doc#0").text == "new 0"


def test_search_is_best_first_and_the_relevance_floor_drops_weak_hits(store: Any) -> None:
    store.save_many(
        "swot",
        [
            {"text": "late night delivery could bring in more money", "id": "opportunity"},
            {"text": "the kitchen is too small for rush hour", "id": "weakness"},
            {"text": "a new pizza chain opens across the street", "id": "threat"},
        ],
    )
    hits = store.search("swot", "late night delivery could bring in more money", limit=3, min_relevance=-1)
    assert hits[0].record.id == "opportunity" and hits[0].relevance == pytest.approx(1.0, abs=1e-5)
    assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)
    assert len(hits) == 3
    floored = store.search("swot", "late night delivery could bring in more money", limit=3, min_relevance=0.5)
    assert [h.record.id for h in floored] == ["opportunity"]
    assert store.search("swot", "anything", limit=0) == []


def test_a_vector_query_and_a_precomputed_embedding_are_normalised(store: Any) -> None:
    vector = np.zeros(64, dtype=np.float32)
    vector[3] = 5.0
    store.save("vec", "given vector", id="v", embedding=vector)
    record = store.get("vec", "v", with_embedding=True)
    assert np.linalg.norm(record.embedding) == pytest.approx(1.0, abs=1e-6)
    hit = store.search("vec", vector * 2, limit=1)[0]
    assert hit.record.id == "v" and hit.relevance == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(MemoryUsageError, match="64 dimensions"):
        store.search("vec", np.ones(10), limit=1)


def _tagged(store: Any) -> None:
    store.save_many(
        "tagged",
        [
            {"text": "menu one", "id": "r1", "metadata": {"year": 2020, "kind": "faq", "date": "2020-05-01"}},
            {"text": "menu two", "id": "r2", "metadata": {"year": 2022.0, "kind": "howto", "reviewed": True}},
            {"text": "menu three", "id": "r3", "metadata": {"year": "2023", "kind": "draft"}},
            {"text": "menu four", "id": "r4", "metadata": {"year": 2024, "flag": 1}},
            {"text": "menu five", "id": "r5", "metadata": {"flag": True, "date": "2021-01-31"}},
        ],
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"kind": "faq"}, {"r1"}),
        ({"year": 2022}, {"r2"}),  # 2022 == 2022.0
        ({"year": "2023"}, {"r3"}),  # typed: the string, not a number
        ({"flag": 1}, {"r4"}),  # 1 is not true
        ({"flag": True}, {"r5"}),
        ({"year": {"gte": 2021, "lt": 2024}}, {"r2"}),  # a numeric range ignores the string "2023"
        ({"date": {"gt": "2020-12-31"}}, {"r5"}),  # ISO dates compare as text
        ({"kind": {"in": ["faq", "draft"]}}, {"r1", "r3"}),
        ({"kind": {"in": []}}, set()),
        ({"kind": {"ne": "draft"}}, {"r1", "r2", "r4", "r5"}),  # records without the key match
        ({"reviewed": {"exists": True}}, {"r2"}),
        ({"kind": {"exists": False}}, {"r4", "r5"}),
        ({"year": {"eq": 2020}, "kind": "faq"}, {"r1"}),
    ],
)
def test_where_filters_mean_the_same_on_both_backends(store: Any, where: dict, expected: set[str]) -> None:
    _tagged(store)
    assert set(store.metadata("tagged", where)) == expected
    assert {r.id for r in store.list("tagged", limit=None, where=where)} == expected
    assert {h.record.id for h in store.search("tagged", "menu", limit=10, min_relevance=-1, where=where)} == expected


def test_bad_filters_are_one_line_usage_errors(store: Any) -> None:
    _tagged(store)
    with pytest.raises(MemoryUsageError, match="unknown operator 'like'"):
        store.search("tagged", "menu", where={"kind": {"like": "f%"}})
    with pytest.raises(MemoryUsageError, match="not supported"):
        store.list("tagged", where={"kind": ["faq"]})
    with pytest.raises(MemoryUsageError, match="invalid metadata key"):
        store.metadata("tagged", where={"bad'key": 1})


def test_a_selective_filter_still_returns_k_hits_from_the_top(store: Any) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(2000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rare = set(range(0, 2000, 250))  # 8 of 2000 records
    store.save_many(
        "big",
        [
            {"text": f"record {i}", "id": f"r{i:04d}", "embedding": vectors[i], "metadata": {"rare": i in rare}}
            for i in range(2000)
        ],
    )
    query = vectors[1]  # a record that does not match the filter
    hits = store.search("big", query, limit=5, min_relevance=-1, where={"rare": True})
    exact = sorted(rare, key=lambda i: -float(vectors[i] @ query))[:5]
    assert [h.record.id for h in hits] == [f"r{i:04d}" for i in exact]
    # Fewer matches than asked: all of them, not a short page of a longer list.
    hits = store.search("big", query, limit=20, min_relevance=-1, where={"rare": True})
    assert sorted(h.record.id for h in hits) == [f"r{i:04d}" for i in sorted(rare)]


def test_mmr_spreads_near_duplicates_and_keeps_the_best_first(store: Any) -> None:
    store.save_many(
        "dups",
        [
            {"text": "pizza delivery late at night downtown", "id": "a"},
            {"text": "pizza delivery late at night downtown now", "id": "a2"},
            {"text": "pizza delivery late at night downtown today", "id": "a3"},
            {"text": "pizza delivery for students", "id": "b"},
        ],
    )
    plain = [h.record.id for h in store.search("dups", "pizza delivery late at night", limit=2)]
    diverse = store.search("dups", "pizza delivery late at night", limit=2, mmr=0.7)
    assert diverse[0].record.id == plain[0]
    assert set(plain) <= {"a", "a2", "a3"} and diverse[1].record.id == "b"
    with pytest.raises(MemoryUsageError, match="mmr"):
        store.search("dups", "pizza", mmr=1.5)


def test_delete_is_idempotent_and_drop_removes_the_collection(store: Any) -> None:
    store.save_many("tmp", ["one", {"text": "two", "id": "two"}, {"text": "three", "id": "three"}])
    assert store.delete("tmp", ["two", "unknown"]) == 1
    assert store.delete("tmp", "two") == 0
    assert store.count("tmp") == 2
    assert [c.name for c in store.collections()] == ["tmp"]
    assert store.drop("tmp") == 2
    assert store.collections() == []
    assert store.metadata("tmp") == {}
    for call in (
        lambda: store.search("tmp", "one"),
        lambda: store.count("tmp"),
        lambda: store.delete("tmp", "x"),
        lambda: store.drop("tmp"),
    ):
        with pytest.raises(CollectionNotFoundError, match="no memory collection named 'tmp'"):
            call()
    store.save("tmp", "again", id="again")  # a dropped name can be used again
    assert store.search("tmp", "again", limit=1)[0].record.id == "again"


def test_collections_list_counts_and_embedders(store: Any) -> None:
    store.save_many("b-notes", ["x", "y"])
    store.save("a-notes", "z")
    infos = store.collections()
    assert [(c.name, c.count, c.embedder, c.dimensions) for c in infos] == [
        ("a-notes", 1, "hashing-64", 64),
        ("b-notes", 2, "hashing-64", 64),
    ]
    assert all(c.created_at.utcoffset().total_seconds() == 0 for c in infos)
    with pytest.raises(MemoryUsageError, match="invalid collection name"):
        store.save("bad name!", "x")


def test_reembed_switches_embedder_and_dimensions_and_mismatch_is_refused(open_backend: StoreFactory) -> None:
    old = open_backend(HashingEmbedder(64))
    old.save_many(
        "kb", [{"text": "opening hours are late", "id": "hours"}, {"text": "the menu has pasta", "id": "menu"}]
    )
    new = open_backend(HashingEmbedder(32))
    with pytest.raises(EmbedderMismatchError, match=r"hashing-64 \(64 dimensions\).*memory reembed kb"):
        new.search("kb", "pasta")
    with pytest.raises(EmbedderMismatchError):
        new.save("kb", "more")
    assert new.reembed("kb") == 2
    assert [(c.embedder, c.dimensions) for c in new.collections()] == [("hashing-32", 32)]
    assert new.search("kb", "the menu has pasta", limit=1)[0].record.id == "menu"
    assert len(new.get("kb", "menu", with_embedding=True).embedding) == 32
    with pytest.raises(EmbedderMismatchError):
        old.search("kb", "pasta")
    new.save("kb", "late dinner", id="dinner")  # the new embedder writes to it now
    assert new.count("kb") == 3


def test_stats_say_backend_and_index(store: Any) -> None:
    store.save_many("s", ["alpha", "beta"])
    stats = store.stats()
    [collection] = stats["collections"]
    assert (collection["name"], collection["records"], collection["dimensions"]) == ("s", 2, 64)
    if stats["backend"] == "postgresql":
        assert collection["index"]["kind"] == "hnsw" and collection["index"]["opclass"] == "vector_cosine_ops"
        assert stats["pgvector"].startswith("0.8")
    else:
        assert collection["index"]["kind"] == "flat"


def test_ingestion_skips_unchanged_files_and_replaces_changed_ones(store: Any, tmp_path: Path) -> None:
    from memories.ingest import ingest

    doc = tmp_path / "menu.md"
    doc.write_text("# Menu\n\nMargherita and calzone.\n\n## Hours\n\nOpen until 2 am on Fridays.\n")
    first = ingest(store, "docs", [doc])
    assert (first.added, first.skipped_unchanged) == (1, 0) and first.chunks >= 2
    assert ingest(store, "docs", [doc]).skipped_unchanged == 1
    doc.write_text("# Menu\n\nOnly pasta now.\n")
    again = ingest(store, "docs", [doc])
    assert (again.added, again.chunks) == (1, 1)
    [hit] = store.search("docs", "pasta", limit=5, min_relevance=0.1)
    assert hit.record.text.endswith("Only pasta now.") and hit.record.metadata["source"] == str(doc.resolve())
