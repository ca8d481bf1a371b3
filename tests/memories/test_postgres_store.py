"""The PostgreSQL layer on a real server: migrations, the vector extension, connection errors, and what only
the pgvector memory store does (its HNSW index, stores in several processes sharing one database)."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest

from kernel_app.providers.postgres import (
    DatabaseUnavailableError,
    Migration,
    SchemaTooNewError,
    VectorExtensionError,
    migrate,
    open_pool,
    schema_version,
)
from memories import HashingEmbedder, PgMemoryStore
from memories.pg_store import MIGRATIONS as MEMORY_MIGRATIONS
from tests.support import postgres as pg_support
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.e2e  # a real PostgreSQL (initdb and postgres processes)

# The fixtures by name (tests/support/postgres.py), assigned: imported names could not be parameters too.
postgres_server = pg_support.postgres_server
postgres_url = pg_support.postgres_url


def _steps(log_calls: list[int] | None = None) -> list[Migration]:
    def second(conn: psycopg.Connection[Any]) -> None:
        if log_calls is not None:
            log_calls.append(2)
        conn.execute("ALTER TABLE things ADD COLUMN size integer")
        conn.execute("INSERT INTO applied VALUES (2)")

    return [
        # No IF NOT EXISTS: applying a step twice would fail, which is what the concurrency test looks for.
        Migration(
            1,
            "things",
            "CREATE TABLE things (name text); CREATE TABLE applied (step integer); INSERT INTO applied VALUES (1)",
        ),
        Migration(2, "things get a size", second),
    ]


def test_a_fresh_database_is_migrated_and_a_second_run_does_nothing(postgres_url: str) -> None:
    calls: list[int] = []
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert schema_version(conn, "things") == 0
        assert migrate(conn, "things", _steps(calls)) == 2
        assert migrate(conn, "things", _steps(calls)) == 2
        assert calls == [2]
        assert conn.execute("SELECT step FROM applied ORDER BY step").fetchall() == [(1,), (2,)]
        assert conn.execute("SELECT namespace, version FROM kernel_app_schema").fetchall() == [("things", 2)]
        # Another name space starts at 0 beside it.
        assert schema_version(conn, "other") == 0


def test_concurrent_starters_apply_each_step_once(postgres_url: str) -> None:
    def slow_first(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_sleep(0.3)")  # keep the lock long enough for the others to queue behind it
        conn.execute(
            "CREATE TABLE things (name text); CREATE TABLE applied (step integer); INSERT INTO applied VALUES (1)"
        )

    steps = [Migration(1, "slow", slow_first), _steps()[1]]
    errors: list[BaseException] = []
    reached: list[int] = []
    barrier = threading.Barrier(4)

    def starter() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                barrier.wait()
                reached.append(migrate(conn, "things", steps))
        except BaseException as exc:  # collected and asserted below, with the thread's own error
            errors.append(exc)

    threads = [threading.Thread(target=starter) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and reached == [2, 2, 2, 2]
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT step FROM applied ORDER BY step").fetchall() == [(1,), (2,)]


def test_a_failing_step_leaves_the_schema_at_the_previous_version(postgres_url: str) -> None:
    def broken(conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE half_done (x integer)")
        raise RuntimeError("step 2 failed")

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(RuntimeError, match="step 2 failed"):
            migrate(conn, "things", [_steps()[0], Migration(2, "broken", broken)])
        assert schema_version(conn, "things") == 1
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)


def test_a_newer_schema_is_a_one_line_error(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        migrate(conn, "things", _steps())
        conn.execute("UPDATE kernel_app_schema SET version = 7 WHERE namespace = 'things'")
        with pytest.raises(SchemaTooNewError) as raised:
            migrate(conn, "things", _steps())
    message = str(raised.value)
    assert "\n" not in message
    assert "'things' tables are at schema version 7" in message and "knows only up to 2" in message
    assert "upgrade kernel-app" in message


def test_the_memory_store_refuses_a_database_from_a_newer_version(postgres_url: str) -> None:
    PgMemoryStore(postgres_url, HashingEmbedder(8)).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE kernel_app_schema SET version = version + 1 WHERE namespace = 'memory'")
    newer = len(MEMORY_MIGRATIONS) + 1
    with pytest.raises(SchemaTooNewError, match=f"'memory' tables are at schema version {newer}"):
        PgMemoryStore(postgres_url, HashingEmbedder(8))


def test_a_user_who_may_not_create_pgvector_is_told_to_run_create_extension(postgres_server: PostgresServer) -> None:
    role = "analyst_" + uuid.uuid4().hex[:8]
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')  # not a superuser, owns its database
    database = postgres_server.create_database(owner=role)
    try:
        with pytest.raises(VectorExtensionError) as raised:
            PgMemoryStore(postgres_server.url(database, user=role), HashingEmbedder(8))
        message = str(raised.value)
        assert "\n" not in message
        assert f"user '{role}' may not create it" in message and "CREATE EXTENSION vector" in message
        # Once a superuser has created it, the same user can use the store.
        with psycopg.connect(postgres_server.url(database), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        with PgMemoryStore(postgres_server.url(database, user=role), HashingEmbedder(8)) as store:
            store.save("notes", "hello")
            assert store.count("notes") == 1
    finally:
        postgres_server.drop_database(database)
        with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{role}"')


def test_an_unreachable_server_is_a_one_line_error_without_the_password(tmp_path: Any) -> None:
    url = f"postgresql://kernel:s3cret-pw@/memory?host={tmp_path}"  # no server listens in an empty folder
    with pytest.raises(DatabaseUnavailableError) as raised:
        open_pool(url)
    message = str(raised.value)
    assert "\n" not in message and "s3cret-pw" not in message
    assert message.startswith(f"cannot connect to PostgreSQL at kernel@{tmp_path}/memory:")
    assert "check database_url" in message


def test_the_pool_adapts_numpy_arrays_to_vectors(postgres_url: str) -> None:
    pool = open_pool(postgres_url)
    try:
        with pool.connection() as conn:
            row = conn.execute("SELECT %s::vector <=> %s::vector", (np.array([1.0, 0.0]), np.array([0.0, 2.0])))
            assert row.fetchone()[0] == pytest.approx(1.0)
    finally:
        pool.close()


def test_searches_use_the_collections_hnsw_index_with_and_without_a_filter(postgres_url: str) -> None:
    # enable_seqscan=off stands in for a collection big enough that the planner prefers the index.
    url = postgres_url + "&options=-c%20enable_seqscan%3Doff"
    with PgMemoryStore(url, HashingEmbedder(32)) as store:
        store.save_many("kb", [{"text": f"note {i}", "metadata": {"n": i}} for i in range(50)])
        index = store.stats()["collections"][0]["index"]["name"]
        assert any(index in line for line in store.explain("kb", "note 3"))
        assert any(index in line for line in store.explain("kb", "note 3", where={"n": {"lt": 5}}))
        # With the index in use, a filter matching 5 of 50 still gives 5 hits, the right ones.
        hits = store.search("kb", "note 3", limit=5, min_relevance=-1, where={"n": {"lt": 5}})
        assert sorted(h.record.metadata["n"] for h in hits) == [0, 1, 2, 3, 4]
        assert store.rebuild_index("kb") == "hnsw"


def _save_from_another_process(url: str, worker: int) -> None:
    with PgMemoryStore(url, HashingEmbedder(16)) as store:
        store.save_many("shared", [{"text": f"worker {worker} note {i}", "id": f"w{worker}-{i}"} for i in range(20)])


def test_stores_in_separate_processes_share_one_database(postgres_url: str) -> None:
    # Four processes create the same collection at once and save into it: one collection, every record.
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_save_from_another_process, args=(postgres_url, w)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with PgMemoryStore(postgres_url, HashingEmbedder(16)) as store:
        assert [(c.name, c.count) for c in store.collections()] == [("shared", 80)]
        assert store.search("shared", "worker 2 note 7", limit=1)[0].record.id == "w2-7"
        assert store.stats()["collections"][0]["index"]["kind"] == "hnsw"


def test_repair_is_refused_with_a_pointer_to_postgres_tools(postgres_url: str) -> None:
    from memories import MemoryUsageError

    with PgMemoryStore(postgres_url, HashingEmbedder(8)) as store, pytest.raises(MemoryUsageError, match="REINDEX"):
        store.repair()


def test_a_missing_client_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from kernel_app.base.errors import DependencyMissingError

    monkeypatch.setitem(sys.modules, "psycopg_pool", None)  # what an install without the extra looks like
    expected = r"psycopg_pool is missing\): pip install 'kernel-app\[postgres\]'"
    with pytest.raises(DependencyMissingError, match=expected):
        open_pool("postgresql://kernel@/memory")


def test_a_pgvector_older_than_0_8_is_refused_in_one_line() -> None:
    from kernel_app.providers.postgres.pool import check_pgvector_version

    check_pgvector_version("0.8.6")
    check_pgvector_version("1.0.0")
    expected = r"pgvector 0\.7\.4, older than 0\.8 .*ALTER EXTENSION vector UPDATE"
    with pytest.raises(VectorExtensionError, match=expected):
        check_pgvector_version("0.7.4", "PostgreSQL database 'kernel'")


def test_the_iterative_index_scan_alone_fills_a_selective_top_k(postgres_url: str) -> None:
    # search() redoes a short top-k exactly; this checks the first, index-only query does not need that:
    # 8 matching records in 2000, ef_search 40, yet the HNSW walk goes on until 5 pass the filter.
    from memories.pg_where import compile_where_pg

    url = postgres_url + "&options=-c%20enable_seqscan%3Doff"  # the planner's choice on a big collection
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2000, 32)).astype(np.float32)
    with PgMemoryStore(url, HashingEmbedder(32)) as store:
        store.save_many(
            "big",
            [
                {"text": f"r{i}", "id": f"r{i}", "embedding": vectors[i], "metadata": {"rare": i % 250 == 0}}
                for i in range(2000)
            ],
        )
        assert any("memory_hnsw_" in line for line in store.explain("big", vectors[1], where={"rare": True}))
        condition, params = compile_where_pg({"rare": True})
        with store.pool.connection() as conn, conn.transaction():
            collection = store._require(conn, "big")
            rows = store._nearest(
                conn, collection, vectors[1] / np.linalg.norm(vectors[1]), condition, params, 5, exact=False
            )
        assert len(rows) == 5 and all(row[3] == {"rare": True} for row in rows)


def test_many_writers_creating_collections_at_once_never_deadlock(postgres_url: str) -> None:
    # A partition's foreign key locks memory_collections: two creators of one name used to deadlock.
    from concurrent.futures import ThreadPoolExecutor

    stores = [PgMemoryStore(postgres_url, HashingEmbedder(8)) for _ in range(6)]
    try:
        names = [f"race{n}" for n in range(8)]
        for name in names:
            with ThreadPoolExecutor(len(stores)) as pool:
                ids = list(pool.map(lambda s, n=name: s.save_many(n, [{"text": "a note"}])[0], stores))
            assert len(set(ids)) == len(stores)
        counts = {c.name: c.count for c in stores[0].collections()}
        assert all(counts[name] == len(stores) for name in names), counts
    finally:
        for store in stores:
            store.close()
