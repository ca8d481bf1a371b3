"""Generation speed of the embedded model by llama.cpp thread count, idle and next to a busy process.

llama.cpp's threads wait for each other at every token, so a thread that loses its core stalls the
rest; this measures where that starts on the machine at hand, to check the default thread count
(kernel_app.providers.llama.threads.default_threads). Each run loads the model with N threads, then
generates the same answer (temperature 0) several times and reports llama.cpp's own tokens/s.

    python bench/bench_threads.py                      # default tier, 1..logical CPUs threads
    python bench/bench_threads.py --model smollm2-135m --threads 1 2 --busy 1 --runs 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = "Write a short paragraph about why small shops matter to a town."


def _spin(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


def measure(model_path: str, threads: int, runs: int, tokens: int) -> list[float]:
    from kernel_app.providers.llama.service import _load

    server = _load(model_path, 2048, threads).server
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens, "temperature": 0.0}
    speeds = []
    for _ in range(runs):
        response = server.handle_chat_completions(body)
        speeds.append(float(response["timings"]["predicted_per_second"]))
    del server  # frees the model before the next thread count loads its own
    return speeds


def main() -> None:
    import os

    from kernel_app.providers.llama.provider import resolve_local_model
    from kernel_app.providers.llama.threads import default_threads, physical_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="tier name or GGUF path (default: the default tier)")
    parser.add_argument("--threads", type=int, nargs="*", default=None, help="thread counts (default 1..CPUs)")
    parser.add_argument("--busy", type=int, nargs="*", default=[0, 1], help="busy neighbour processes (default 0 1)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()

    path, tier = resolve_local_model(args.model)
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    thread_counts = args.threads or list(range(1, logical + 1))
    print(
        f"model: {tier.title if tier else path}; {logical} logical CPUs, {physical_cores()} physical cores, "
        f"default threads {default_threads()}; {args.runs} runs of {args.tokens} tokens each"
    )
    print("| threads | busy neighbours | tokens/s median | min | max |")
    print("| --- | --- | --- | --- | --- |")
    for busy in args.busy:
        for threads in thread_counts:
            # A neighbour that spins for the whole measurement (loading included), then exits by itself.
            neighbours = [
                multiprocessing.Process(target=_spin, args=(time.monotonic() + 600,), daemon=True) for _ in range(busy)
            ]
            for neighbour in neighbours:
                neighbour.start()
            try:
                speeds = measure(str(path), threads, args.runs, args.tokens)
            finally:
                for neighbour in neighbours:
                    neighbour.terminate()
                    neighbour.join()
            print(
                f"| {threads} | {busy} | {statistics.median(speeds):.1f} | {min(speeds):.1f} | {max(speeds):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
