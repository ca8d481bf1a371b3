"""PgMemoryStore: loading batches into a collection that already has rows, as ``memory migrate``'s later
batches do, three ways; and ``memory migrate`` (copy_store) end to end, with and without the deferred index.

Not a test: prints records/s and ratios measured in one run, and recall@10 after each load (the index
built at the end must search as well as the one updated row by row). Starts its own PostgreSQL 18 +
pgvector 0.8 (bench_memory_backends.py's), 384-dimensional clustered vectors (bench_memory.py's).

    python bench/bench_pg_append.py                          # 20k rows there, 20k more in batches of 1000
    python bench/bench_pg_append.py --there 5000 --more 10000 --migrate 20000

The three ways, each batch one ``save_many`` (its own transaction):

- row by row: one INSERT ... ON CONFLICT per record (the bulk path off), the HNSW graph updated per row;
- COPY: the batch through a binary COPY into a temporary table and one INSERT ... SELECT ... ON CONFLICT,
  the index kept, so the graph is still updated row by row inside that one statement;
- COPY, index deferred: the same, inside ``PgMemoryStore.index_deferred``: no index while the batches
  go in, one build over every row at the end (what ``copy_store`` does now when at least as many
  records are left to copy as the collection holds).
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_memory import DIMENSIONS, BenchVectors, K, exact_top_k, machine, make_data  # noqa: E402
from bench_memory_backends import embedded_postgres, items, new_database  # noqa: E402

BATCH = 1000  # copy_store's default batch


def recall(store: Any, collection: str, vectors: np.ndarray, queries: np.ndarray) -> float:
    truth = exact_top_k(vectors, queries)
    found = 0
    for query, expected in zip(queries, truth, strict=True):
        hits = store.search(collection, query, limit=K, min_relevance=-1)
        found += len({int(hit.record.id[1:]) for hit in hits} & {int(i) for i in expected})
    return found / (len(queries) * K)


def append(url: str, vectors: np.ndarray, there: int, way: str, queries: np.ndarray) -> tuple[float, float]:
    """(records/s of the batches after the first ``there`` rows, recall@10 after)."""
    from memories import PgMemoryStore, pg_store

    saved = pg_store.BULK_MIN_RECORDS
    with PgMemoryStore(url, BenchVectors()) as store:
        store.save_many("c", items(vectors[:there]))  # one first load (COPY, index built once)
        if way == "row by row":
            pg_store.BULK_MIN_RECORDS = BATCH + 1
        try:
            start = time.perf_counter()
            deferred = store.index_deferred("c") if way == "COPY, index deferred" else contextlib.nullcontext()
            with deferred:
                for first in range(there, len(vectors), BATCH):
                    batch = items(vectors[: first + BATCH])[first:]  # ids r<first>...: as items() names them
                    store.save_many("c", batch)
            rate = (len(vectors) - there) / (time.perf_counter() - start)
        finally:
            pg_store.BULK_MIN_RECORDS = saved
        return rate, recall(store, "c", vectors, queries)


def migrate(url: str, vectors: np.ndarray, defer: bool, queries: np.ndarray) -> tuple[float, float]:
    """(records/s of copy_store from a local store into an empty database, recall@10 after)."""
    import shutil
    import tempfile

    from memories import MemoryStore, PgMemoryStore, copy

    folder = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    saved = copy.DEFER_INDEX_MIN
    try:
        with MemoryStore(folder, BenchVectors()) as local:
            local.save_many("c", items(vectors))
            if not defer:
                copy.DEFER_INDEX_MIN = len(vectors) + 1
            with PgMemoryStore(url, BenchVectors()) as database:
                start = time.perf_counter()
                copy.copy_store(local, database, batch_size=BATCH, sample=10)
                rate = len(vectors) / (time.perf_counter() - start)
                return rate, recall(database, "c", vectors, queries)
    finally:
        copy.DEFER_INDEX_MIN = saved
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--there", type=int, default=20_000, help="rows in the collection before the batches")
    parser.add_argument("--more", type=int, default=20_000, help="rows added, in batches of 1000")
    parser.add_argument("--migrate", type=int, default=20_000, help="records memory migrate copies (0: skip)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(machine())
    total = args.there + args.more
    vectors, queries = make_data("clustered", max(total, args.migrate), args.queries, args.seed)
    with embedded_postgres() as server:
        print(f"\n{args.more:,} records in batches of {BATCH} into a collection of {args.there:,} ({DIMENSIONS} dims)")
        rates = {}
        for way in ("row by row", "COPY", "COPY, index deferred"):
            rate, found = append(new_database(server), vectors[:total], args.there, way, queries)
            rates[way] = rate
            print(f"  {way:<22} {rate:>8,.0f} records/s   recall@10 {found:.3f}")
            sys.stdout.flush()
        base = rates["row by row"]
        print(
            f"  COPY / row by row: {rates['COPY'] / base:.2f}x; "
            f"COPY, index deferred / row by row: {rates['COPY, index deferred'] / base:.2f}x; "
            f"deferred / COPY: {rates['COPY, index deferred'] / rates['COPY']:.2f}x"
        )
        if args.migrate:
            print(f"\nmemory migrate (copy_store) of {args.migrate:,} records, local -> PostgreSQL, batches of {BATCH}")
            sample = vectors[: args.migrate]
            kept, kept_recall = migrate(new_database(server), sample, False, queries)
            print(f"  index kept after the first batch {kept:>8,.0f} records/s   recall@10 {kept_recall:.3f}")
            sys.stdout.flush()
            deferred, deferred_recall = migrate(new_database(server), sample, True, queries)
            print(f"  index deferred, built at the end {deferred:>8,.0f} records/s   recall@10 {deferred_recall:.3f}")
            print(f"  deferred / kept: {deferred / kept:.2f}x")


if __name__ == "__main__":
    main()
