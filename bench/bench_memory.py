"""Similarity search and bulk save: our MemoryStore vs numpy and semantic-kernel's own collections.

Not a test: prints tables and ratios measured in one run. Vectors are 384-dimensional and
L2-normalised; embedding is excluded (every store is given the vectors).

    python bench/bench_memory.py                      # 10k and 100k, both data sets
    python bench/bench_memory.py --large              # adds 1M (ours + numpy only)
    python bench/bench_memory.py --tune --tune-size 50000   # the measurements behind the index settings

Data sets:
* ``uniform``: Gaussian draws normalised, i.e. uniform on the sphere; queries likewise. No
  neighbourhood structure at all: the worst case for any approximate index.
* ``clustered``: 50 topics x 20 sub-topics plus noise, which gives cosine ~0.55 inside a sub-topic,
  ~0.3 inside a topic and ~0 across, closer to what sentence embeddings look like; queries are fresh
  draws from the same mixture (near records, but none of them).

Timed per query, one query at a time (the interactive case): numpy brute force (``x @ q`` +
argpartition: the exact baseline and ground truth), semantic-kernel 1.45's ``InMemoryCollection``
and ``FaissCollection`` (their ``search(vector=..., top=10)``; the slow ones are timed on fewer
queries, said in the table), and ours (``MemoryStore.search`` with a query vector: the index
freshness check, the index search — exact, HNSW, or PQ candidates re-ranked exactly, whichever the
store's calibration chose — and the SQLite read of the 10 records). Latency is the median
(p50); recall@10 is against numpy's exact top 10.
"""

import argparse
import asyncio
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIMENSIONS = 384
K = 10


# --- data ------------------------------------------------------------------------------------


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(kind: str, n: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return normalise(rng.standard_normal((n, DIMENSIONS))), normalise(rng.standard_normal((queries, DIMENSIONS)))
    topics = normalise(rng.standard_normal((50, DIMENSIONS)))
    subtopics = normalise(rng.standard_normal((50 * 20, DIMENSIONS)))

    def draw(count: int) -> np.ndarray:
        out = np.empty((count, DIMENSIONS), dtype=np.float32)
        for start in range(0, count, 100_000):  # bounded memory at 1M
            size = min(100_000, count - start)
            sub = rng.integers(0, len(subtopics), size)
            noise = rng.standard_normal((size, DIMENSIONS)) * 0.045
            out[start : start + size] = normalise(0.55 * topics[sub // 20] + 0.7 * subtopics[sub] + noise)
        return out

    return draw(n), draw(queries)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    best = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64] @ vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        best[start : start + 64] = np.take_along_axis(top, order, axis=1)
    return best


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    p50_ms: float
    recall: float
    queries: int
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def timed_queries(
    search: Callable[[np.ndarray], list[int]], queries: np.ndarray, truth: np.ndarray, budget_s: float
) -> tuple[float, float, int]:
    """p50 latency (ms), recall@10 and how many queries were timed (stops once over budget, min 3)."""
    search(queries[0])  # warm-up
    latencies, hits, spent = [], 0, 0.0
    for i, query in enumerate(queries):
        start = time.perf_counter()
        found = search(query)
        elapsed = time.perf_counter() - start
        latencies.append(elapsed)
        hits += len(set(found[:K]) & set(truth[i].tolist()))
        spent += elapsed
        if spent > budget_s and len(latencies) >= 3:
            break
    return 1000 * statistics.median(latencies), hits / (K * len(latencies)), len(latencies)


def bench_numpy(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, budget_s: float) -> Result:
    def search(query: np.ndarray) -> list[int]:
        scores = vectors @ query
        top = np.argpartition(-scores, K - 1)[:K]
        return top[np.argsort(-scores[top])].tolist()

    p50, recall, count = timed_queries(search, queries, truth, budget_s)
    return Result("numpy brute force", p50, recall, count)


def sk_record_type() -> type:
    from dataclasses import dataclass as sk_dataclass

    from semantic_kernel.data.vector import DistanceFunction, VectorStoreField, vectorstoremodel

    @vectorstoremodel
    @sk_dataclass
    class BenchRecord:
        id: Annotated[int, VectorStoreField("key")]
        text: Annotated[str, VectorStoreField("data")] = ""
        vector: Annotated[
            np.ndarray | None,
            VectorStoreField("vector", dimensions=DIMENSIONS, distance_function=DistanceFunction.DOT_PROD),
        ] = None

    return BenchRecord


def bench_sk(kind: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, budget_s: float) -> Result:
    from semantic_kernel.connectors.faiss import FaissCollection
    from semantic_kernel.connectors.in_memory import InMemoryCollection

    cls = FaissCollection if kind == "faiss" else InMemoryCollection
    record_type = sk_record_type()
    loop = asyncio.new_event_loop()
    try:
        collection = cls(record_type=record_type, collection_name="bench")
        loop.run_until_complete(collection.ensure_collection_exists())
        records = [record_type(id=i, text=f"record {i}", vector=vectors[i]) for i in range(len(vectors))]
        start = time.perf_counter()
        for batch in range(0, len(records), 10_000):
            loop.run_until_complete(collection.upsert(records[batch : batch + 10_000]))
        upsert_rate = len(records) / (time.perf_counter() - start)

        async def run(query: np.ndarray) -> list[int]:
            results = await collection.search(vector=query.tolist(), top=K)
            return [hit.record.id async for hit in results.results]

        p50, recall, count = timed_queries(lambda q: loop.run_until_complete(run(q)), queries, truth, budget_s)
    finally:
        loop.close()
    name = "semantic-kernel FaissCollection" if kind == "faiss" else "semantic-kernel InMemoryCollection"
    return Result(name, p50, recall, count, extra={"save_per_s": upsert_rate})


class BenchVectors:
    """The store's embedder for precomputed vectors (embedding is not what is measured)."""

    name = "bench-vectors-384"
    dimensions = DIMENSIONS

    def embed(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError("the benchmark passes vectors")


def bench_ours(
    vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, budget_s: float, workdir: Path, **options: Any
) -> Result:
    from memories import MemoryStore

    path = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=workdir))
    try:
        with MemoryStore(path, BenchVectors(), **options) as store:
            items = [{"id": f"r{i}", "text": f"record {i}", "embedding": v} for i, v in enumerate(vectors)]
            start = time.perf_counter()
            for batch in range(0, len(items), 10_000):
                store.save_many("bench", items[batch : batch + 10_000])
            save_rate = len(items) / (time.perf_counter() - start)
            del items
            gc.collect()
            start = time.perf_counter()
            store.search("bench", queries[0], limit=K)  # builds (and saves) the index
            build_s = time.perf_counter() - start
            index = store.stats()["collections"][0]["index"]

            def search(query: np.ndarray) -> list[int]:
                return [int(hit.record.id[1:]) for hit in store.search("bench", query, limit=K, min_relevance=-1)]

            p50, recall, count = timed_queries(search, queries, truth, budget_s)
        if index["kind"] == "hnsw":
            kind = f"hnsw, efSearch {index['ef_search']}"
        elif index["kind"] == "pq":  # HNSW was tried and missed the target: PQ candidates, exact re-rank
            kind = f"pq (HNSW rejected), exact re-rank of 10 x k_factor {index['k_factor']} PQ candidates"
        else:
            kind = index["kind"]
        note = f"{kind}; index build {build_s:.1f} s"
        return Result("ours (MemoryStore)", p50, recall, count, note, {"save_per_s": save_rate, "build_s": build_s})
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- reporting -------------------------------------------------------------------------------


def print_table(title: str, results: list[Result]) -> None:
    sk_faiss = next((r for r in results if "FaissCollection" in r.name), None)
    numpy_result = next(r for r in results if r.name.startswith("numpy"))
    print(f"\n{title}")
    print(f"{'method':36} {'p50 ms':>9} {'recall@10':>10} {'queries':>8} {'vs SK Faiss':>12} {'vs numpy':>9}  notes")
    for r in results:
        vs_sk = f"{sk_faiss.p50_ms / r.p50_ms:10.1f}x" if sk_faiss else "-"
        vs_np = f"{numpy_result.p50_ms / r.p50_ms:8.1f}x"
        print(f"{r.name:36} {r.p50_ms:9.2f} {r.recall:10.3f} {r.queries:8d} {vs_sk:>12} {vs_np:>9}  {r.note}")
    saves = [(r.name, r.extra["save_per_s"]) for r in results if "save_per_s" in r.extra]
    if saves:
        print("  bulk save (records/s, embedding excluded): " + "; ".join(f"{n}: {v:,.0f}" for n, v in saves))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            memory = f", {int(handle.readline().split()[1]) / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    import faiss

    return (
        f"{cpu}, {os.cpu_count()} CPUs{memory}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"faiss {faiss.__version__}; {time.strftime('%Y-%m-%d %H:%M')}"
    )


# --- runs --------------------------------------------------------------------------------------


def compare(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir or tempfile.gettempdir())
    for kind in args.data:
        for n in args.sizes + ([1_000_000] if args.large else []):
            vectors, queries = make_data(kind, n, args.queries, args.seed)
            truth = exact_top_k(vectors, queries)
            results = [bench_numpy(vectors, queries, truth, args.budget)]
            if n <= 200_000 and not args.skip_sk:
                results.append(bench_sk("in_memory", vectors, queries, truth, args.budget))
                results.append(bench_sk("faiss", vectors, queries, truth, args.budget))
            results.append(bench_ours(vectors, queries, truth, args.budget, workdir))
            print_table(f"{kind} data, {n:,} records x {DIMENSIONS} dims", results)
            sys.stdout.flush()
            del vectors, queries, truth, results
            gc.collect()


def tune(args: argparse.Namespace) -> None:
    """Exact-scan latency by size, and HNSW build speed / recall / latency by M, efConstruction, efSearch."""
    import faiss

    from memories.index import faiss_threads

    for kind in args.data:
        vectors, queries = make_data(kind, args.tune_size, 200, args.seed)
        print(f"\n{kind} data: exact IndexFlatIP, one query at a time, one thread")
        for n in (10_000, 25_000, 50_000, 100_000):
            if n > len(vectors):
                break
            flat = faiss.IndexFlatIP(DIMENSIONS)
            flat.add(vectors[:n])
            with faiss_threads(1):
                for query in queries[:5]:
                    flat.search(query[None], K)
                times = []
                for query in queries[:50]:
                    start = time.perf_counter()
                    flat.search(query[None], K)
                    times.append(time.perf_counter() - start)
            print(f"  {n:>7,} records: p50 {1000 * statistics.median(times):6.2f} ms")
        truth = exact_top_k(vectors, queries)
        print(f"{kind} data, {len(vectors):,} records: HNSW (inner product), one query at a time, one thread")
        for m, ef_construction in args.tune_grid:
            graph = faiss.IndexHNSWFlat(DIMENSIONS, m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = ef_construction
            start = time.perf_counter()
            graph.add(vectors)
            build = time.perf_counter() - start
            for ef in (64, 128, 256, 512, 1024):
                params = faiss.SearchParametersHNSW(efSearch=ef)
                _, found = graph.search(queries, K, params=params)
                recall = np.mean([len(set(found[i]) & set(truth[i])) / K for i in range(len(queries))])
                with faiss_threads(1):
                    times = []
                    for query in queries[:100]:
                        start = time.perf_counter()
                        graph.search(query[None], K, params=params)
                        times.append(time.perf_counter() - start)
                print(
                    f"  M={m:<3} efConstruction={ef_construction:<4} build {build:6.1f} s "
                    f"({len(vectors) / build:7,.0f}/s)  efSearch={ef:<5} recall@10 {recall:.3f}  "
                    f"p50 {1000 * statistics.median(times):6.2f} ms"
                )
            sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--data", nargs="+", choices=["uniform", "clustered"], default=["uniform", "clustered"])
    parser.add_argument("--queries", type=int, default=200, help="queries per method (fewer if over --budget)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of searching per method and size")
    parser.add_argument("--large", action="store_true", help="also 1M records (numpy and ours only)")
    parser.add_argument("--skip-sk", action="store_true", help="leave semantic-kernel's collections out")
    parser.add_argument("--tune", action="store_true", help="print the index parameter measurements instead")
    parser.add_argument("--tune-size", type=int, default=50_000)
    parser.add_argument(
        "--tune-grid",
        type=lambda s: tuple(int(v) for v in s.split(":")),
        nargs="+",
        default=[(16, 64), (32, 64), (32, 128)],
        help="M:efConstruction pairs",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="where the stores are written (default: the temp directory)")
    args = parser.parse_args()
    print(machine())
    if args.tune:
        tune(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
