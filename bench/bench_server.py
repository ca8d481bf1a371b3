"""Server load and overhead on loopback, against the scripted chat service.

Not a test: prints figures. The server runs in a subprocess (uvicorn, as `kernel-app serve` does);
the clients are httpx in this process.

    python bench/bench_server.py [--clients 32] [--requests 2000] [--before REV]

* Overhead: sequential non-streamed ``/v1/chat/completions`` (model ``kernel-app``) against the same
  turn run in-process with ``ConversationEngine.complete`` on the same scripted service: the
  difference of the p50s is what HTTP, JSON and the server add per request. Goal: under 2 ms.
  Printed twice: inside the server (its ``Server-Timing`` header: middleware, validation, the turn,
  JSON) and end to end (plus the loopback round trip and the httpx client; ``GET /healthz`` shows
  that floor).
  ``POST /v1/functions/Writer.Summarize/invoke`` (a prompt function on the same service) is timed the
  same way, against ``run_chain`` in-process.
* ``--before REV`` also serves a git worktree of REV (e.g. the commit before a change) and sends the
  sequential requests to both servers in turn, so a loaded machine slows both alike: the ratio of the
  two says what the change did.
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
    from kernel_app.base.config import Settings
    from kernel_app.interfaces.server import create_app
    from kernel_app.providers.scripted import ScriptedChatCompletion

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


INVOKE = ("/v1/functions/Writer.Summarize/invoke", {"input": "Our bakery opens at six."})


async def sequential(bases: list[str], requests: int) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Per server and route: round trips, and the server's own time (its ``Server-Timing`` header).

    The servers take turns request by request, so load from elsewhere on the machine hits them alike.
    """
    import httpx

    routes = {"chat": ("/v1/chat/completions", BODY), "invoke": INVOKE}
    results = {base: {name: ([], []) for name in routes} for base in bases}
    async with httpx.AsyncClient(timeout=60) as client:
        for index in range(requests + 20):
            for name, (path, body) in routes.items():
                for base in bases:
                    began = time.perf_counter()
                    response = await client.post(f"{base}{path}", json=body)
                    elapsed = time.perf_counter() - began
                    assert response.status_code == 200, f"a sequential request to {path} failed: {response.text}"
                    if index >= 20:  # warm-up
                        times, server = results[base][name]
                        times.append(elapsed)
                        server.append(float(response.headers["server-timing"].split("dur=")[1]) / 1000)
    return results


async def invoke_in_process(requests: int, data_dir: str) -> list[float]:
    from kernel_app.kernel.runner import run_chain

    app = _app(data_dir)
    kernel = app.state.kernel_app.kernel
    function = kernel.get_function("Writer", "Summarize")
    times = []
    for index in range(requests + 20):
        began = time.perf_counter()
        run = await run_chain(kernel, [function], input=INVOKE[1]["input"], variables={})
        if index >= 20:
            times.append(time.perf_counter() - began)
        assert run.result == ANSWER
    return times


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


def _start(root: Path, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    script = root / "bench" / "bench_server.py"
    return subprocess.Popen([sys.executable, str(script), "--serve", str(port), "--data", data_dir], cwd=root)


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"the server at {base} did not start")
        time.sleep(0.2)


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sequential", type=int, default=300, help="requests for the overhead figure")
    parser.add_argument("--before", metavar="REV", help="also serve a git worktree of REV, measured in turn")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.data)
        return

    with tempfile.TemporaryDirectory() as data_dir:
        servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        tree = Path(data_dir) / "before"
        try:
            roots = {"now": ROOT}
            if args.before:
                subprocess.run(
                    ["git", "worktree", "add", "--detach", "--quiet", str(tree), args.before], cwd=ROOT, check=True
                )
                roots["before"] = tree
            for label, root in roots.items():
                port = _free_port()
                servers[label] = (f"http://127.0.0.1:{port}", _start(root, port, str(Path(data_dir) / label)))
            for base, server in servers.values():
                _wait_ready(base, server)
            engine = asyncio.run(in_process(args.sequential, str(Path(data_dir) / "inproc")))
            chain = asyncio.run(invoke_in_process(args.sequential, str(Path(data_dir) / "inproc-invoke")))
            measured = asyncio.run(sequential([base for base, _ in servers.values()], args.sequential))
            base = servers["now"][0]
            empty = asyncio.run(floor(base, args.sequential))
            wall, plain, streamed, errors = asyncio.run(load(base, args.clients, args.requests))
        finally:
            for _, server in servers.values():
                server.terminate()
                server.wait(timeout=30)
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)

    print(f"overhead ({args.sequential} sequential non-streamed requests per route and server):")
    print(f"  GET /healthz p50 {_ms(empty):.2f} ms (client + uvicorn + FastAPI, no work)")
    for name, title, inproc in (
        ("chat", "POST /v1/chat/completions, model kernel-app", engine),
        ("invoke", f"POST {INVOKE[0]}", chain),
    ):
        print(f"  {title}: in-process p50 {_ms(inproc):.2f} ms")
        for label, (base, _) in servers.items():
            http, server_side = measured[base][name]
            print(
                f"    {label:<7} over HTTP p50 {_ms(http):.2f} ms, inside the server {_ms(server_side):.2f} ms; "
                f"overhead {_ms(http) - _ms(inproc):.2f} ms end to end ({_ms(http) / _ms(inproc):.2f}x in-process), "
                f"{_ms(server_side) - _ms(inproc):.2f} ms inside (goal < 2 ms)"
            )
        if "before" in servers:
            now, before = measured[servers["now"][0]][name], measured[servers["before"][0]][name]
            print(
                f"    now/before: {_ms(now[0]) / _ms(before[0]):.2f}x end to end, "
                f"{_ms(now[1]) / _ms(before[1]):.2f}x inside the server"
            )
    done = len(plain) + len(streamed)
    print(f"load ({args.clients} clients, {done} requests, half streamed): {done / wall:.0f} req/s, {errors} errors")
    for name, times in (("non-streamed", plain), ("streamed", streamed)):
        if times:
            p50, p99 = statistics.median(times) * 1000, _percentile(times, 0.99) * 1000
            print(f"  {name:<12} p50 {p50:.1f} ms  p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
