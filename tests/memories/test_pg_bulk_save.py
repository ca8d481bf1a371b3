"""PgMemoryStore's bulk path: a big save_many goes through COPY, and a first load into an empty
collection builds the HNSW index once at the end. Counts, upserts, search and rollback must match the
row-by-row path."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest

from memories import HashingEmbedder, PgMemoryStore, pg_store
from tests.support import postgres as pg_support

pytestmark = pytest.mark.e2e  # a real PostgreSQL (initdb and postgres processes)

postgres_server = pg_support.postgres_server
postgres_url = pg_support.postgres_url

DIMS = 32


def _records(vectors: np.ndarray, start: int = 0, tag: str = "first") -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{start + i}",
            "text": f"{tag} {start + i}",
            "embedding": vector,
            "metadata": {"tag": tag, "rare": (start + i) % 500 == 0},
        }
        for i, vector in enumerate(vectors)
    ]


def _index_exists(store: PgMemoryStore, collection: str) -> bool:
    with store.pool.connection() as conn:
        current = store._require(conn, collection)
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (current.index_name,)).fetchone()
    return bool(row and row[0])


def test_a_big_first_load_then_an_upsert_of_some_ids_keeps_counts_and_search_right(postgres_url: str) -> None:
    rng = np.random.default_rng(7)
    n = 5000  # a first load into an empty collection: the drop-index-and-rebuild path
    vectors = rng.normal(size=(n, DIMS)).astype(np.float32)
    with PgMemoryStore(postgres_url, HashingEmbedder(DIMS)) as store:
        ids = store.save_many("bulk", _records(vectors))
        assert ids == [f"r{i}" for i in range(n)]
        assert store.count("bulk") == n
        assert _index_exists(store, "bulk")  # rebuilt after the load
        assert any("memory_hnsw_" in line for line in store.explain("bulk", vectors[5]))

        # An upsert of 600 ids (bulk path, collection not empty: the index is kept) with new vectors,
        # 400 of them existing and 200 new, one id given twice (the last one wins).
        fresh = rng.normal(size=(600, DIMS)).astype(np.float32)
        batch = _records(fresh, start=n - 400, tag="second")
        batch.append({"id": f"r{n - 400}", "text": "second, given twice", "embedding": fresh[0], "metadata": {}})
        store.save_many("bulk", batch)
        assert store.count("bulk") == n + 200
        record = store.get("bulk", f"r{n - 1}", with_embedding=True)
        assert record is not None and record.text == f"second {n - 1}"
        assert record.embedding is not None
        expected = fresh[399] / np.linalg.norm(fresh[399])
        assert np.allclose(record.embedding, expected, atol=1e-6)
        twice = store.get("bulk", f"r{n - 400}")
        assert twice is not None and twice.text == "second, given twice"
        untouched = store.get("bulk", "r3")
        assert untouched is not None and untouched.text == "first 3" and untouched.metadata["tag"] == "first"

        # Search finds an upserted vector and an original one as their own nearest neighbours.
        assert store.search("bulk", fresh[123], limit=1)[0].record.id == f"r{n - 400 + 123}"
        assert store.search("bulk", vectors[42], limit=1)[0].record.id == "r42"
        rare = store.search("bulk", vectors[0], limit=5, where={"rare": True})
        assert rare and all(hit.record.metadata["rare"] is True for hit in rare)


def test_a_failed_bulk_load_leaves_the_collection_as_it_was(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    n = pg_store.BULK_MIN_RECORDS + 1  # one is bad: the rest still takes the bulk path
    with PgMemoryStore(postgres_url, HashingEmbedder(DIMS)) as store:
        store.save("kept", "created first", id="a", embedding=rng.normal(size=DIMS))
        store.drop("kept")
        store.save_many("kept", [{"text": "x", "id": "seed", "embedding": rng.normal(size=DIMS)}])
        store.delete("kept", "seed")  # an existing, empty collection: the next load drops its index
        records = _records(rng.normal(size=(n, DIMS)).astype(np.float32))
        records[-1]["text"] = "bad \x00 byte"  # PostgreSQL text cannot hold NUL: the COPY fails at the end
        with pytest.raises(psycopg.Error):
            store.save_many("kept", records)
        assert store.count("kept") == 0
        assert _index_exists(store, "kept")

        # Failing after the index was dropped and the rows inserted (the index build): all rolled back.
        def failing_build(conn: psycopg.Connection[Any], collection: Any) -> None:
            raise RuntimeError("index build failed")

        with monkeypatch.context() as patched:
            patched.setattr(pg_store, "_create_index", failing_build)
            with pytest.raises(RuntimeError, match="index build failed"):
                store.save_many("kept", records[:-1])
        assert store.count("kept") == 0
        assert _index_exists(store, "kept")  # the drop was rolled back with the rows
        store.save_many("kept", records[:-1])
        assert store.count("kept") == n - 1
        assert _index_exists(store, "kept")


def test_a_deferred_index_is_dropped_while_batches_go_in_and_built_once_at_the_end(postgres_url: str) -> None:
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(1800, DIMS)).astype(np.float32)
    with PgMemoryStore(postgres_url, HashingEmbedder(DIMS)) as store:
        store.save_many("grow", _records(vectors[:600]))
        with store.index_deferred("grow"):
            assert not _index_exists(store, "grow")
            why = store.stats()["collections"][0]["index"]
            assert why["kind"] == "exact" and "not built" in why["why"]
            store.save_many("grow", _records(vectors[600:1200], start=600))  # bulk path: builds no index
            assert not _index_exists(store, "grow")
            store.save_many("grow", _records(vectors[1200:1210], start=1200))  # row by row
            assert store.search("grow", vectors[700], limit=1)[0].record.id == "r700"  # exact meanwhile
        assert _index_exists(store, "grow") and store.count("grow") == 1210
        assert store.stats()["collections"][0]["index"]["kind"] == "hnsw"
        assert any("memory_hnsw_" in line for line in store.explain("grow", vectors[5]))
        assert store.search("grow", vectors[1205], limit=1)[0].record.id == "r1205"

        with pytest.raises(RuntimeError, match="the load failed"), store.index_deferred("grow"):
            raise RuntimeError("the load failed")
        assert _index_exists(store, "grow")  # built however the block ends

        with store.pool.connection() as conn:  # a load stopped before it could build (a killed process)
            conn.execute(f'DROP INDEX "{store._require(conn, "grow").index_name}"')
        assert store.rebuild_index("grow") == "hnsw" and _index_exists(store, "grow")


def test_migrate_defers_the_index_when_most_records_are_still_to_copy(
    postgres_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memories import MemoryStore, copy

    rng = np.random.default_rng(10)
    vectors = rng.normal(size=(700, DIMS)).astype(np.float32)
    monkeypatch.setattr(copy, "DEFER_INDEX_MIN", 300)
    deferred: list[str] = []
    with (
        MemoryStore(tmp_path / "local", HashingEmbedder(DIMS)) as local,
        PgMemoryStore(postgres_url, HashingEmbedder(DIMS)) as database,
    ):
        local.save_many("big", _records(vectors))
        local.save_many("small", _records(vectors[:150]))
        original = database.index_deferred

        def spied(collection: str) -> Any:
            deferred.append(collection)
            return original(collection)

        monkeypatch.setattr(database, "index_deferred", spied)
        copy.copy_store(local, database, batch_size=100)
        assert deferred == ["big"]  # 600 left after the first batch of 100: deferred; "small" is too small
        assert _index_exists(database, "big") and _index_exists(database, "small")
        assert database.count("big") == 700
        assert database.search("big", vectors[650], limit=1)[0].record.id == "r650"

        with database.pool.connection() as conn:  # a copy stopped inside its deferred load...
            conn.execute(f'DROP INDEX "{database._require(conn, "big").index_name}"')
        copy.copy_store(local, database, batch_size=100)  # ...run again: nothing to copy, the index built
        assert _index_exists(database, "big") and deferred == ["big"]
