"""chat-copilot's real web app in a real headless Chromium, connected to server B, while the message is sent
through server A on the same PostgreSQL (issue 19): A's answer reaches B's page through the LISTEN/NOTIFY
backplane. The web app is the unmodified production build in shared/chat-copilot-webapp, served for B by its
own ``serve_webapp.py``; the browser is driven over the DevTools protocol (tests/support/browser.py).
``bench/browser_webapp_two_servers.py`` runs the same check on two ``kernel-app serve`` processes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server.app import create_app
from memories import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.browser import INSTALL, Browser, chromium, wait_for
from tests.support.cli import ROOT
from tests.support.copilot_client import ask
from tests.support.server import running
from tests.support.tool_scripted import ToolScripted

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

WEBAPP = ROOT.parent / "shared" / "chat-copilot-webapp"
REPLY = "The ovens are lit at four, so the first loaves are out by six."

pytestmark = [
    pytest.mark.e2e,  # two uvicorn servers, PostgreSQL and a browser
    pytest.mark.skipif(chromium() is None, reason=f"needs a Chromium: {INSTALL} (.ci/run installs it)"),
]


@contextmanager
def _web_app() -> Iterator[tuple[str, Callable[[str], None]]]:
    """The built web app on a free port: (the page's origin, a function that points it at a backend)."""
    sys.path.insert(0, str(WEBAPP))
    try:
        import serve_webapp  # shared/chat-copilot-webapp's static server
    finally:
        sys.path.remove(str(WEBAPP))
    serve_webapp.Handler.log_message = lambda *_: None  # the page's requests are no test output
    server = serve_webapp.make_server("http://127.0.0.1:1/copilot/", port=0)

    def point_at(backend: str) -> None:
        # make_server bakes the backend into a Handler subclass (wrapped in a partial): B's address is
        # known only once B serves, and B must know the page's origin before it starts.
        server.RequestHandlerClass.func.backend = backend.rstrip("/").encode() + b"/"

    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", point_at
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _serving(folder: Path, database_url: str, service: ToolScripted, origin: str) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    # The page's origin as `serve --cors-origin` gives it: the web app's surface allows it too (once it did not,
    # and the page hung on "Connecting…").
    app: Any = create_app(
        settings, chat_service=service, embedder=HashingEmbedder(64), cors_origins=[origin], mcp=False
    )
    with running(app) as url:
        yield url
    app.state.kernel_app.store.close()


def test_a_reply_computed_on_a_appears_in_the_browser_connected_to_b(tmp_path: Path, postgres_url: str) -> None:
    browser_path = chromium()
    assert browser_path is not None
    service_a = ToolScripted(default=REPLY)
    service_b = ToolScripted(default="B is never asked")
    with (
        _web_app() as (origin, point_at),
        _serving(tmp_path / "a", postgres_url, service_a, origin) as a,
        _serving(tmp_path / "b", postgres_url, service_b, origin) as b,
    ):
        point_at(f"{b}/copilot/")
        browser = Browser(browser_path, tmp_path / "profile")
        try:
            browser.open(origin + "/")
            chats: list[dict[str, Any]] = []

            def chat_created() -> bool:
                chats[:] = httpx.get(f"{b}/copilot/chats", timeout=5).json()
                return bool(chats)

            wait_for("the web app creating its chat on B", chat_created, 60)
            chat_id = chats[0]["id"]
            wait_for("the page's hub connection", lambda: browser.logged("connection established"), 30)
            first = httpx.get(f"{b}/copilot/chats/{chat_id}/messages").json()[-1]["content"][:40]
            wait_for("the chat's first message in the page", lambda: first in browser.text(), 30)

            said = httpx.post(
                f"{a}/copilot/chats/{chat_id}/messages", json=ask("When is the bread ready?", chat_id), timeout=60
            )
            assert said.status_code == 200 and said.json()["value"] == REPLY, said.text
            wait_for("A's answer in B's page", lambda: REPLY in browser.text(), 30)
        finally:
            browser.close()
    assert service_b.requests == []  # A answered; B only relayed it to its page
