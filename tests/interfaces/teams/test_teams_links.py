"""Which engine conversation a Teams chat is (issue 19): ``claim`` agrees on one id, in SQLite and in
PostgreSQL, and two Teams servers on one PostgreSQL taking a new chat's first two messages at once end
with ONE conversation holding both."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server import create_app
from kernel_app.interfaces.server.teams import teams_config
from kernel_app.interfaces.server.teams.links import Links, PgTeamsLinks, TeamsLinks, open_links
from memories.embedders import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import running
from tests.support.teams import FakeConnector, activity, fake_connector, post
from tests.support.tool_scripted import ToolScripted

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


def _claims_agree(links: Links) -> None:
    assert links.claim("chat-1", "c1") == "c1"  # the first proposal wins
    assert links.claim("chat-1", "c2") == "c1" and links.get("chat-1") == "c1"  # a later one gets it
    links.set("chat-1", "c5")  # /reset
    assert links.get("chat-1") == "c5" and links.get("chat-2") is None


def test_sqlite_links_agree_on_the_first_claim(tmp_path: Path) -> None:
    links = TeamsLinks.beside(tmp_path / "conversations.sqlite3")
    try:
        _claims_agree(links)
    finally:
        links.close()
    assert isinstance(open_links(":memory:"), TeamsLinks)  # without database_url, as before


@pytest.mark.e2e  # PostgreSQL
def test_postgres_links_agree_on_the_first_claim(postgres_url: str) -> None:
    links = open_links(":memory:", postgres_url)
    assert isinstance(links, PgTeamsLinks)
    try:
        _claims_agree(links)
    finally:
        links.close()


def _claim(go: threading.Barrier, answers: list[str], links: PgTeamsLinks, chat: str, proposed: str) -> None:
    go.wait()
    answers.append(links.claim(chat, proposed))


@pytest.mark.e2e  # PostgreSQL
def test_racing_claims_on_two_pools_get_one_answer(postgres_url: str) -> None:
    first, second = PgTeamsLinks(postgres_url), PgTeamsLinks(postgres_url)  # as two servers
    try:
        for round_ in range(20):
            go = threading.Barrier(2)
            answers: list[str] = []
            threads = [
                threading.Thread(target=_claim, args=(go, answers, links, f"chat-{round_}", name))
                for links, name in ((first, "a"), (second, "b"))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert len(answers) == 2 and answers[0] == answers[1] in ("a", "b")
    finally:
        first.close()
        second.close()


@contextmanager
def _teams_server(folder: Path, database_url: str, service: ToolScripted) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(
        settings, chat_service=service, embedder=HashingEmbedder(64), teams=teams_config({}, anonymous=True)
    )
    try:
        with running(app) as url:
            yield url
    finally:
        app.state.kernel_app.store.close()


def _conversations(url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/v1/conversations", timeout=30).json()["data"]


@pytest.mark.e2e  # two uvicorn servers on one PostgreSQL
def test_a_new_chat_first_messages_on_two_servers_at_once_make_one_conversation(
    tmp_path: Path, postgres_url: str
) -> None:
    service_a, service_b = ToolScripted(default="Noted."), ToolScripted(default="Noted.")
    with (
        fake_connector() as connector,
        _teams_server(tmp_path / "a", postgres_url, service_a) as a,
        _teams_server(tmp_path / "b", postgres_url, service_b) as b,
    ):
        go = threading.Barrier(2)
        codes: list[int] = []

        def say(url: str, text: str, connector: FakeConnector = connector) -> None:
            body = activity(connector, text, conversation="chat-new", channel="test")
            go.wait()
            codes.append(post(url, body).status_code)

        threads = [threading.Thread(target=say, args=(url, text)) for url, text in ((a, "first"), (b, "second"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert codes == [202, 202]
        connector.wait_for(lambda s: s.type == "message" and s.text == "Noted.")
        connector.wait_for(lambda s: s.type == "message" and s.text == "Noted.")
        listed = _conversations(a)
        assert [c["id"] for c in listed] == [c["id"] for c in _conversations(b)]
        (conversation,) = listed  # ONE conversation, on both servers
        said = httpx.get(f"{a}/v1/conversations/{conversation['id']}", timeout=30).json()["messages"]
        assert sorted(m["content"] for m in said if m["role"] == "user") == ["first", "second"]
        # a third message, on either server, goes on in the same conversation
        assert post(b, activity(connector, "third", conversation="chat-new", channel="test")).status_code == 202
        connector.wait_for(lambda s: s.type == "message" and s.text == "Noted.")
        assert [c["id"] for c in _conversations(b)] == [conversation["id"]]
