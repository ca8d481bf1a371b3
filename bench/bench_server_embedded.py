"""Eight clients at once on the embedded model, through ``kernel-app serve``: answers or 429, never a 500.

Not a test: prints figures. The server is ``kernel-app serve`` in a subprocess, on the embedded model
(one generation at a time) with a small queue; eight clients send a short non-streamed request each,
0.2 s apart, and we report each one's status, when it was answered, and whether those admitted were
answered in the order they arrived.

    python bench/bench_server_embedded.py [--model smollm2-135m] [--clients 8] [--queue 4]

Goal (issue "Serve the kernel"): every client gets a 200 or a 429 with ``Retry-After``, no 5xx, and the
admitted ones are served first come, first served.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, server: subprocess.Popen, limit: float = 300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:  # 200 once the model has loaded
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"not ready within {limit:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="embedded tier (default: the tiny one)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--queue", type=int, default=4, help="requests waiting behind the one generating")
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "KERNEL_APP_MEMORY_DIR": data, "KERNEL_APP_MODEL": args.model}
        command = [sys.executable, "-m", "kernel_app", "serve", "--port", str(port), "--queue", str(args.queue)]
        server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        try:
            loaded = _wait_ready(url, server)
            print(f"{args.model}: ready in {loaded:.1f} s; {args.clients} clients, queue {args.queue}")
            results: dict[int, tuple[int, float, str]] = {}
            began = time.perf_counter()

            def ask(number: int) -> None:
                body = {
                    "model": "kernel-app",
                    "messages": [{"role": "user", "content": f"Say hello to client {number}."}],
                    "max_tokens": args.max_tokens,
                }
                response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
                results[number] = (
                    response.status_code,
                    time.perf_counter() - began,
                    response.headers.get("retry-after", ""),
                )

            threads = [threading.Thread(target=ask, args=(n,)) for n in range(args.clients)]
            for thread in threads:
                thread.start()
                time.sleep(0.2)  # arrival order = client number
            for thread in threads:
                thread.join()
        finally:
            server.terminate()
            _, log = server.communicate(timeout=30)

    print(f"{'client':>6}  {'status':>6}  {'answered at':>11}  retry-after")
    for number in sorted(results):
        status, at, retry = results[number]
        print(f"{number:>6}  {status:>6}  {at:>10.1f}s  {retry}")
    statuses = [results[n][0] for n in sorted(results)]
    admitted = [n for n in sorted(results) if results[n][0] == 200]
    fair = [n for n, _ in sorted(((n, results[n][1]) for n in admitted), key=lambda item: item[1])] == admitted
    server_errors = sum(status >= 500 for status in statuses)
    refused_without_retry = sum(results[n][0] == 429 and not results[n][2] for n in results)
    print(
        f"200: {statuses.count(200)}, 429: {statuses.count(429)}, 5xx: {server_errors}, "
        f"429 without Retry-After: {refused_without_retry}; admitted answered in arrival order: {fair}"
    )
    if "Traceback" in log:
        print("the server logged a traceback:\n" + log[-2000:])


if __name__ == "__main__":
    main()
