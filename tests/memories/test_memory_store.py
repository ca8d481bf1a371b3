"""MemoryStore behaviour on the deterministic HashingEmbedder: CRUD, upsert, filters, MMR, embedders."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from memories import (
    CollectionNotFoundError,
    EmbedderMismatchError,
    HashingEmbedder,
    MemoryRecord,
    MemoryStore,
    MemoryUsageError,
    SearchHit,
)
from memories.embedders import normalize_rows

LOW_THRESHOLD = 60  # makes small collections use HNSW, to run the same tests on both index kinds


@pytest.fixture(params=["flat", "hnsw"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore:
    threshold = LOW_THRESHOLD if request.param == "hnsw" else 50_000
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64), hnsw_threshold=threshold) as opened:
        yield opened


VOCABULARY = [
    *("rent", "staff", "flour", "oven", "delivery", "bike", "menu", "price", "lunch", "dinner", "review"),
    *("supplier", "invoice", "cash", "card", "tip", "salad", "soup", "wine", "beer", "coffee", "dessert"),
    *("school", "office", "event", "catering", "parking", "street", "season", "summer", "winter"),
]


def fill(store: MemoryStore, count: int, collection: str = "notes") -> None:
    """``count`` varied filler records (ids filler-0..), none about pizza or cheese."""
    rng = np.random.default_rng(count)
    texts = [" ".join(rng.choice(VOCABULARY, size=6)) for _ in range(count)]
    store.save_many(collection, [{"id": f"filler-{i}", "text": text} for i, text in enumerate(texts)])


def ids(hits: list[SearchHit]) -> list[str]:
    return [hit.record.id for hit in hits]


@pytest.mark.e2e
def test_package_import_stays_light() -> None:
    code = "import sys, memories; print('numpy' in sys.modules, 'faiss' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_save_get_list_count_collections(store: MemoryStore) -> None:
    first = store.save("notes", "The oven runs at 450 degrees", id="oven", description="kitchen", metadata={"n": 1})
    generated = store.save("notes", "Delivery is done by bike")
    assert first == "oven" and len(generated) == 32
    record = store.get("notes", "oven", with_embedding=True)
    assert isinstance(record, MemoryRecord)
    assert (record.text, record.description, record.metadata) == ("The oven runs at 450 degrees", "kitchen", {"n": 1})
    assert record.embedding is not None and record.embedding.shape == (64,)
    assert record.created_at is not None and record.created_at == record.updated_at
    assert store.get("notes", "missing") is None
    assert ids_of(store.get_many("notes", ["missing", "oven", generated])) == ["oven", generated]
    assert store.count("notes") == 2
    assert [r.id for r in store.list("notes", limit=1)] == sorted(["oven", generated])[:1]
    assert len(store.list("notes", limit=None, offset=1)) == 1
    [info] = store.collections()
    assert (info.name, info.embedder, info.dimensions, info.count) == ("notes", "hashing-64", 64, 2)


def ids_of(records: list[MemoryRecord]) -> list[str]:
    return [r.id for r in records]


def test_upsert_of_an_existing_id_replaces_it(store: MemoryStore) -> None:
    # The exact sequence that desynchronises semantic-kernel's FaissCollection.
    fill(store, 100)
    store.save("notes", "pepperoni pizza with extra cheese", id="special")
    assert ids(store.search("notes", "pepperoni pizza cheese", limit=1)) == ["special"]
    created = store.get("notes", "special").created_at
    store.save("notes", "vegan calzone with roasted peppers", id="special")
    assert store.count("notes") == 101
    [hit] = store.search("notes", "vegan calzone roasted peppers", limit=1)
    assert hit.record.id == "special" and hit.record.text == "vegan calzone with roasted peppers"
    assert hit.relevance > 0.7
    assert hit.record.created_at == created and hit.record.updated_at > created
    old = store.search("notes", "pepperoni pizza cheese", limit=200)
    assert [h.record.text for h in old if h.record.id == "special"] == ["vegan calzone with roasted peppers"]
    assert len(old) == len(set(ids(old)))  # the old vector is gone, not returned as a duplicate


def test_delete_then_search_and_delete_twice(store: MemoryStore) -> None:
    fill(store, 100)
    store.save("notes", "pepperoni pizza with extra cheese", id="special")
    store.search("notes", "pepperoni", limit=3)  # the index exists before the delete
    assert store.delete("notes", ["special"]) == 1
    assert "special" not in ids(store.search("notes", "pepperoni pizza with extra cheese", limit=200))
    assert store.delete("notes", ["special"]) == 0
    assert store.delete("notes", "special") == 0
    hits = store.search("notes", "pepperoni pizza with extra cheese", limit=5)
    assert len(hits) == 5 and "special" not in ids(hits)
    assert store.count("notes") == 100


def test_filter_applies_before_top_k(store: MemoryStore) -> None:
    # 195 records that match the query better than the 5 that pass the filter.
    store.save_many(
        "notes",
        [
            {"id": f"close-{i}", "text": f"pizza oven dough cheese tomato basil {i}", "metadata": {"tag": "common"}}
            for i in range(195)
        ]
        + [{"id": f"rare-{i}", "text": f"pizza accounting ledger {i}", "metadata": {"tag": "rare"}} for i in range(5)],
    )
    hits = store.search("notes", "pizza oven dough cheese tomato basil", limit=5, where={"tag": "rare"})
    assert sorted(ids(hits)) == [f"rare-{i}" for i in range(5)]
    assert len(store.search("notes", "pizza", limit=10, where={"tag": "rare"})) == 5  # all that match
    assert store.search("notes", "pizza", where={"tag": "none"}) == []


def test_where_syntax_numbers_ranges_types(store: MemoryStore) -> None:
    rows = [
        ("a", {"year": 2018, "kind": "faq", "ok": True}),
        ("b", {"year": 2020, "kind": "howto", "ok": False}),
        ("c", {"year": 2021.5, "kind": "faq"}),
        ("d", {"year": "2022", "kind": "note", "date": "2024-03-01"}),  # a string: not a number
        ("e", {"year": 2024, "date": "2023-12-31"}),
    ]
    store.save_many("notes", [{"id": i, "text": f"record {i}", "metadata": m} for i, m in rows])

    def where(condition: dict) -> list[str]:
        listed = sorted(r.id for r in store.list("notes", limit=None, where=condition))
        found = sorted(ids(store.search("notes", "record", limit=10, where=condition)))
        assert listed == found
        return listed

    assert where({"year": {"gte": 2020}}) == ["b", "c", "e"]
    assert where({"year": {"gt": 2020, "lt": 2024}}) == ["c"]
    assert where({"year": {"lte": 2020}}) == ["a", "b"]
    assert where({"year": 2020}) == ["b"]
    assert where({"year": 2020.0}) == ["b"]
    assert where({"year": "2022"}) == ["d"]
    assert where({"kind": "faq", "year": {"lt": 2021}}) == ["a"]
    assert where({"kind": {"in": ["faq", "note"]}}) == ["a", "c", "d"]
    assert where({"kind": {"ne": "faq"}}) == ["b", "d", "e"]  # "e" has no kind: not equal
    assert where({"kind": {"exists": False}}) == ["e"]
    assert where({"ok": True}) == ["a"]
    assert where({"ok": False}) == ["b"]
    assert where({"year": True}) == []  # typed: true is not 1
    assert where({"date": {"gte": "2024-01-01"}}) == ["d"]  # ISO dates compare as text
    for bad in ({"year": {"between": 1}}, {"year": {"gt": True}}, {"year": {"in": "x"}}, {'bad"key': 1}, {"k": {}}):
        with pytest.raises(MemoryUsageError):
            store.search("notes", "record", where=bad)


def test_min_relevance_and_limit(store: MemoryStore) -> None:
    store.save_many("notes", ["garlic bread", "garlic knots with butter", "tax return deadline"])
    hits = store.search("notes", "garlic bread", limit=5, min_relevance=0.3)
    assert hits[0].record.text == "garlic bread" and hits[0].relevance == pytest.approx(1.0, abs=1e-5)
    assert all(h.relevance >= 0.3 for h in hits) and "tax return deadline" not in [h.record.text for h in hits]
    assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)
    assert store.search("notes", "garlic bread", limit=0) == []
    assert len(store.search("notes", "garlic", limit=2)) == 2


def test_mmr_spreads_out_near_duplicates(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    query = normalize_rows(rng.standard_normal(64))[0]
    other = normalize_rows(rng.standard_normal((8, 64)))
    duplicates = normalize_rows(0.95 * query + 0.05 * other[0] + 0.01 * rng.standard_normal((5, 64)))
    diverse = normalize_rows(0.75 * query + 0.66 * other[1:6])
    items = [{"id": f"dup-{i}", "text": f"dup {i}", "embedding": v} for i, v in enumerate(duplicates)]
    items += [{"id": f"div-{i}", "text": f"div {i}", "embedding": v} for i, v in enumerate(diverse)]
    items += [
        {"id": f"far-{i}", "text": f"far {i}", "embedding": v}
        for i, v in enumerate(normalize_rows(rng.standard_normal((30, 64))))
    ]
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        store.save_many("notes", items)
        plain = ids(store.search("notes", query, limit=5))
        assert all(i.startswith("dup-") for i in plain)
        diverse_hits = store.search("notes", query, limit=5, mmr=0.5)
        picked = ids(diverse_hits)
        assert picked[0] == plain[0]  # the best hit stays first
        assert sum(i.startswith("dup-") for i in picked) <= 2 and sum(i.startswith("div-") for i in picked) >= 3
        assert all(h.relevance > 0.5 for h in diverse_hits)  # relevance is still the cosine to the query
        assert ids(store.search("notes", query, limit=5, mmr=0.0)) == plain
        with pytest.raises(MemoryUsageError):
            store.search("notes", query, mmr=1.5)


def test_search_by_vector_and_precomputed_embeddings(store: MemoryStore) -> None:
    vector = normalize_rows(np.arange(64, dtype=np.float32))[0]
    store.save("notes", "anything", id="v", embedding=vector * 3)  # normalised on the way in
    store.save("notes", "something else", id="w")
    [hit] = store.search("notes", vector, limit=1)
    assert hit.record.id == "v" and hit.relevance == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(MemoryUsageError):
        store.save("notes", "wrong size", embedding=np.ones(10))
    with pytest.raises(MemoryUsageError):
        store.search("notes", np.ones(10))


def test_embedder_mismatch_is_a_clear_error_and_reembed_fixes_it(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        store.save_many("notes", ["wood oven pizza", "gluten free crust", "late night delivery"])
        store.search("notes", "oven")
    with MemoryStore(tmp_path / "mem", HashingEmbedder(32)) as other:
        for attempt in (lambda: other.search("notes", "oven"), lambda: other.save("notes", "new text")):
            with pytest.raises(EmbedderMismatchError) as caught:
                attempt()
            message = str(caught.value)
            assert "hashing-64" in message and "hashing-32" in message
            assert "kernel-app memory reembed notes" in message
        assert other.reembed("notes") == 3
        assert [c.embedder for c in other.collections()] == ["hashing-32"]
        assert other.search("notes", "wood oven pizza", limit=1)[0].record.text == "wood oven pizza"
        other.save("notes", "new text")
        assert other.count("notes") == 4
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as first, pytest.raises(EmbedderMismatchError):
        first.search("notes", "oven")


def test_unknown_collection_and_bad_arguments(store: MemoryStore) -> None:
    store.save("notes", "x")
    for call in (
        lambda: store.search("nope", "x"),
        lambda: store.count("nope"),
        lambda: store.delete("nope", ["a"]),
        lambda: store.list("nope"),
        lambda: store.drop("nope"),
    ):
        with pytest.raises(CollectionNotFoundError, match="collections: notes"):
            call()
    assert store.metadata("nope") == {}
    for bad in (
        lambda: store.save("bad name!", "x"),
        lambda: store.save("notes", "x", id=""),
        lambda: store.save("notes", "x", metadata={"nested": {"a": 1}}),
        lambda: store.save("notes", "x", metadata={"nan": float("nan")}),
        lambda: store.save("notes", 42),  # type: ignore[arg-type]
    ):
        with pytest.raises(MemoryUsageError):
            bad()


def test_drop_removes_records_and_index_files(store: MemoryStore) -> None:
    fill(store, 80)
    store.search("notes", "filler", limit=1)
    assert (store.index_dir / "notes.faiss").exists()
    assert store.drop("notes") == 80
    assert store.collections() == []
    assert not (store.index_dir / "notes.faiss").exists()
    store.save("notes", "a fresh start")  # same name, new incarnation
    assert ids(store.search("notes", "fresh start")) == [store.list("notes")[0].id]


def test_save_many_replacing_and_in_batch_duplicates(store: MemoryStore) -> None:
    store.save_many("notes", [{"id": "doc#0", "text": "old zero"}, {"id": "doc#1", "text": "old one"}])
    store.save_many("notes", [{"id": "doc#0", "text": "new zero"}], replacing=["doc#0", "doc#1"])
    assert [(r.id, r.text) for r in store.list("notes")] == [("doc#0", "new zero")]
    assert store.save_many("notes", [{"id": "x", "text": "first"}, {"id": "x", "text": "second"}]) == ["x", "x"]
    assert store.get("notes", "x").text == "second" and store.count("notes") == 2
    assert store.save_many("notes", []) == []


def test_stats_reports_index_kind(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64), hnsw_threshold=LOW_THRESHOLD) as store:
        fill(store, 50)
        assert store.stats()["collections"][0]["index"]["kind"] == "flat"
        fill(store, 120)
        stats = store.stats()
        index = stats["collections"][0]["index"]
        assert index["kind"] == "hnsw" and index["vectors"] == 120 and index["ef_search"] >= 16
        assert stats["collections"][0]["records"] == 120 and stats["database_bytes"] > 0
