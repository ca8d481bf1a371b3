"""The HTTP server on loopback: uvicorn on a free port, the app over the scripted service, what it saved."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationStore
from kernel_app.interfaces.server import create_app
from memories.embedders import HashingEmbedder
from tests.support.tool_scripted import ToolScripted

SUM_PLAN = json.dumps({"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]})


def serve_process(port: int, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``kernel-app serve --port PORT ARGS`` as a real process, from the project root, its output piped."""
    from tests.support.cli import ROOT

    return subprocess.Popen(
        [sys.executable, "-m", "kernel_app", "serve", "--port", str(port), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


SERVED: dict[str, Any] = {}  # base URL -> the app served there, while it is (tests/support/teams.py's post)


@contextmanager
def running(app: Any, *, keep_alive: int = 5) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields the base URL (the app is ``SERVED[url]``).
    ``keep_alive``: seconds an idle connection stays open (uvicorn's default, 5)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_keep_alive=keep_alive
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    SERVED[url] = app
    try:
        yield url
    finally:
        SERVED.pop(url, None)
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_ready(proc: Any, url: str, within: float) -> None:
    """Poll ``url``'s /readyz until it answers 200; fail with the server's stderr if it exits or takes longer."""
    import httpx

    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)


def make_app(tmp_path: Path, service: ToolScripted, settings: Settings | None = None, **options: Any) -> Any:
    """The app over ``service``, its data under ``tmp_path``; ``settings`` (their memory_dir is replaced)."""
    settings = (settings or Settings()).replace(memory_dir=tmp_path / "memory")
    options.setdefault("store", ConversationStore(tmp_path / "memory" / "conversations.sqlite3"))
    options.setdefault("embedder", HashingEmbedder(64))
    return create_app(settings, chat_service=service, **options)


def saved_notes(tmp_path: Path) -> list[str]:
    from memories import MemoryStore
    from memories.embedders import HashingEmbedder

    store = MemoryStore(tmp_path / "memory", embedder=HashingEmbedder(64))
    if "notes" not in [c.name for c in store.collections()]:
        return []
    return [r.text for r in store.list("notes", 10, 0)]
