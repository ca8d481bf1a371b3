"""Server load and overhead on loopback, against the scripted chat service.

Not a test: prints figures. The server runs in a subprocess (uvicorn, as `kernel-app serve` does);
the clients are httpx in this process.

    python bench/bench_server.py [--clients 32] [--requests 2000]

* Overhead: sequential non-streamed ``/v1/chat/completions`` (model ``kernel-app``) against the same
  turn run in-process with ``ConversationEngine.complete`` on the same scripted service: the
  difference of the p50s is what HTTP, JSON and the server add per request. Goal: under 2 ms.
  Printed twice: inside the server (its ``Server-Timing`` header: middleware, validation, the turn,
  JSON) and end to end (plus the loopback round trip and the httpx client; ``GET /healthz`` shows
  that floor).
* Load: ``--clients`` concurrent clients share ``--requests`` requests, half of them streamed:
  throughput, p50/p99 latency, errors. Goal: 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANSWER = "Fresh bread every morning brings the neighbourhood back, and the queue is part of the charm."
BODY = {"model": "kernel-app", "messages": [{"role": "user", "content": "Why do people like our bakery?"}]}


def _app(data_dir: str) -> Any:
    from kernel_app.config import Settings
    from kernel_app.server import create_app
    from kernel_app.services.scripted import ScriptedChatCompletion

    service = ScriptedChatCompletion(default=ANSWER)
    return create_app(Settings(memory_dir=Path(data_dir)), chat_service=service, queue=4096, mcp=False)


def serve(port: int, data_dir: str) -> None:
    import uvicorn

    uvicorn.run(_app(data_dir), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def in_process(requests: int, data_dir: str) -> list[float]:
    from kernel_app.conversation import Message, collect

    app = _app(data_dir)
    engine = app.state.kernel_app.engine
    messages = [Message("user", BODY["messages"][0]["content"])]
    times = []
    for index in range(requests + 20):
        began = time.perf_counter()
        result = await collect(engine.complete(messages, stream=False))
        if index >= 20:  # warm-up
            times.append(time.perf_counter() - began)
        assert result.text == ANSWER
    return times


async def one(client: Any, url: str, stream: bool) -> tuple[float, bool]:
    began = time.perf_counter()
    try:
        if stream:
            text = ""
            async with client.stream("POST", url, json={**BODY, "stream": True}) as response:
                ok = response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        choices = json.loads(line[6:]).get("choices") or [{}]
                        text += choices[0].get("delta", {}).get("content") or ""
                    elif line.startswith("data: [DONE]"):
                        break
            ok = ok and text == ANSWER
        else:
            response = await client.post(url, json=BODY)
            ok = response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == ANSWER
    except Exception:
        ok = False
    return time.perf_counter() - began, ok


async def sequential(base: str, requests: int) -> tuple[list[float], list[float]]:
    """Round trips, and the server's own time for each (its ``Server-Timing`` header)."""
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(20):
            await client.post(f"{base}/v1/chat/completions", json=BODY)
        times, server = [], []
        for _ in range(requests):
            began = time.perf_counter()
            response = await client.post(f"{base}/v1/chat/completions", json=BODY)
            times.append(time.perf_counter() - began)
            assert response.status_code == 200, "a sequential request failed"
            server.append(float(response.headers["server-timing"].split("dur=")[1]) / 1000)
        return times, server


async def floor(base: str, requests: int) -> list[float]:
    """GET /healthz round trips: what httpx, uvicorn and FastAPI cost with no work behind them."""
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        times = []
        for index in range(requests + 20):
            began = time.perf_counter()
            response = await client.get(f"{base}/healthz")
            if index >= 20:
                times.append(time.perf_counter() - began)
            assert response.status_code == 200
        return times


async def load(base: str, clients: int, requests: int) -> tuple[float, list[float], list[float], int]:
    import httpx

    queue: asyncio.Queue[bool] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index % 2 == 1)  # every other request streamed
    plain: list[float] = []
    streamed: list[float] = []
    errors = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            stream = queue.get_nowait()
            elapsed, ok = await one(client, f"{base}/v1/chat/completions", stream)
            (streamed if stream else plain).append(elapsed)
            errors += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - began
    return wall, plain, streamed, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sequential", type=int, default=300, help="requests for the overhead figure")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.data)
        return
    import httpx

    with tempfile.TemporaryDirectory() as data_dir:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--data", str(Path(data_dir) / "server")], cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            engine = asyncio.run(in_process(args.sequential, str(Path(data_dir) / "inproc")))
            http, server_side = asyncio.run(sequential(base, args.sequential))
            empty = asyncio.run(floor(base, args.sequential))
            wall, plain, streamed, errors = asyncio.run(load(base, args.clients, args.requests))
        finally:
            server.terminate()
            server.wait(timeout=30)

    engine_p50, http_p50 = statistics.median(engine), statistics.median(http)
    print(f"overhead ({args.sequential} sequential non-streamed requests, model kernel-app):")
    print(f"  in-process engine p50 {engine_p50 * 1000:.2f} ms; over HTTP p50 {http_p50 * 1000:.2f} ms")
    server_p50 = statistics.median(server_side)
    print(
        f"  inside the server (Server-Timing) p50 {server_p50 * 1000:.2f} ms: "
        f"{(server_p50 - engine_p50) * 1000:.2f} ms more than the in-process turn"
    )
    print(f"  GET /healthz p50 {statistics.median(empty) * 1000:.2f} ms (client + uvicorn + FastAPI, no work)")
    print(
        f"  server overhead p50 {(http_p50 - engine_p50) * 1000:.2f} ms per request "
        f"(ratio {http_p50 / engine_p50:.2f}x the in-process turn; goal < 2 ms)"
    )
    done = len(plain) + len(streamed)
    print(f"load ({args.clients} clients, {done} requests, half streamed): {done / wall:.0f} req/s, {errors} errors")
    for name, times in (("non-streamed", plain), ("streamed", streamed)):
        if times:
            p50, p99 = statistics.median(times) * 1000, _percentile(times, 0.99) * 1000
            print(f"  {name:<12} p50 {p50:.1f} ms  p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
