"""chat-copilot's real web app in a real headless Chromium, connected to server B, while the message is sent
through server A on the same PostgreSQL (issue 19): A's answer reaches B's page through the LISTEN/NOTIFY
backplane. The web app is the unmodified production build in shared/chat-copilot-webapp, served for B by its
own ``serve_webapp.py``; the browser is Debian's Chromium driven by Playwright
(tests/support/playwright_browser.py). ``bench/browser_webapp_two_servers.py`` runs the same check on two
``kernel-app serve`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server.app import create_app
from memories import HashingEmbedder
from tests.support import playwright_browser as pw
from tests.support import postgres as pg_support
from tests.support.copilot_client import ask
from tests.support.server import running
from tests.support.tool_scripted import ToolScripted
from tests.support.webapp import web_app

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url
browser = pw.browser  # Playwright's fixtures, by name (tests/support/playwright_browser.py)
page = pw.page

REPLY = "The ovens are lit at four, so the first loaves are out by six."

pytestmark = [pytest.mark.e2e, pw.needs_chromium]  # two uvicorn servers, PostgreSQL and a browser


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


def test_a_reply_computed_on_a_appears_in_the_browser_connected_to_b(
    tmp_path: Path, postgres_url: str, page: Any
) -> None:
    service_a = ToolScripted(default=REPLY)
    service_b = ToolScripted(default="B is never asked")
    with (
        web_app() as (origin, point_at),
        _serving(tmp_path / "a", postgres_url, service_a, origin) as a,
        _serving(tmp_path / "b", postgres_url, service_b, origin) as b,
    ):
        point_at(f"{b}/copilot/")
        with page.expect_console_message(lambda m: "connection established" in m.text, timeout=60_000):
            page.goto(origin + "/")  # the page's hub connection to B
        page.get_by_text("Hello! I am Kernel App").wait_for(timeout=30_000)  # the chat the web app made on B
        (chat,) = httpx.get(f"{b}/copilot/chats", timeout=5).json()
        said = httpx.post(
            f"{a}/copilot/chats/{chat['id']}/messages", json=ask("When is the bread ready?", chat["id"]), timeout=60
        )
        assert said.status_code == 200 and said.json()["value"] == REPLY, said.text
        page.get_by_text(REPLY).wait_for(timeout=30_000)  # A's answer in B's page
    assert service_b.requests == []  # A answered; B only relayed it to its page
