"""Two servers on one PostgreSQL serve the same chat-copilot chats (issue 19): a chat created through one
is listed by the other, and a reply computed on A reaches a SignalR client (pysignalr) connected to B's
hub, through the LISTEN/NOTIFY backplane, exactly once and in order; a client on A gets it once too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server.app import create_app
from kernel_app.interfaces.server.chat_copilot.backplane import LISTENER_NAME
from memories import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.copilot_client import USER, HubClient, ask
from tests.support.server import running
from tests.support.tool_scripted import ToolScripted

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # two uvicorn servers on one PostgreSQL

# 3 words (the scripted model streams word by word), 16 KB: far over NOTIFY's 8000-byte payload
LONG = "Sourdough " + "needs-time-" * 1500 + " really"


@contextmanager
def _serving(folder: Path, database_url: str, service: ToolScripted) -> Iterator[tuple[str, Any]]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(settings, chat_service=service, embedder=HashingEmbedder(64))
    with running(app) as url:
        yield url, app
    app.state.kernel_app.store.close()


@pytest.fixture
def two(
    tmp_path: Path, postgres_url: str
) -> Iterator[tuple[tuple[str, Any, ToolScripted], tuple[str, Any, ToolScripted]]]:
    service_a, service_b = ToolScripted(), ToolScripted()
    with (
        _serving(tmp_path / "a", postgres_url, service_a) as (a, app_a),
        _serving(tmp_path / "b", postgres_url, service_b) as (b, app_b),
    ):
        yield (a, app_a, service_a), (b, app_b, service_b)


def _done(client: HubClient, count: int) -> bool:
    """``count`` turns finished: the bot's status was cleared that many times."""
    return sum(1 for args in client.of("ReceiveBotResponseStatus") if args[1] is None) >= count


async def _hub(url: str, chat_id: str) -> HubClient:
    client = HubClient(f"{url}/copilot")
    await client.start()
    await client.join(chat_id)
    return client


async def test_a_reply_computed_on_a_reaches_a_client_of_b_exactly_once(two: Any) -> None:
    (a, _, service_a), (b, _, service_b) = two
    service_a.queue("Croissants sell best before nine.")
    async with httpx.AsyncClient(base_url=f"{a}/copilot", timeout=30) as http_a:
        created = await http_a.post("/chats", json={"title": "Bakery"})
        assert created.status_code == 201, created.text
        chat_id = created.json()["chatSession"]["id"]
        listed = httpx.get(f"{b}/copilot/chats").json()  # created on A, listed on B
        assert [(c["id"], c["title"]) for c in listed] == [(chat_id, "Bakery")]

        on_a, on_b = await _hub(a, chat_id), await _hub(b, chat_id)
        try:
            answer = await http_a.post(f"/chats/{chat_id}/messages", json=ask("When do croissants sell?", chat_id))
            assert answer.status_code == 200, answer.text
            await on_b.wait(lambda c: _done(c, 1))
            await on_a.wait(lambda c: _done(c, 1))
            await asyncio.sleep(0.5)  # time for a duplicate to arrive, if one were sent
        finally:
            await on_a.stop()
            await on_b.stop()
    assert on_b.received == on_a.received  # the same calls, in the same order, each once
    [[chat, sender, bot]] = on_b.of("ReceiveMessage")
    assert (chat, sender, bot["authorRole"]) == (chat_id, USER, 1)
    updates = [args[0] for args in on_b.of("ReceiveMessageUpdate")]
    assert {u["id"] for u in updates} == {bot["id"]}
    assert updates[-1]["content"] == "Croissants sell best before nine." and updates[-1]["tokenUsage"]
    assert len(service_a.requests) == 1 and not service_b.requests  # computed on A only

    shown = httpx.get(f"{b}/copilot/chats/{chat_id}/messages").json()  # and B shows the turn
    assert [m["content"] for m in shown][:2] == ["Croissants sell best before nine.", "When do croissants sell?"]


async def test_long_messages_relays_between_clients_and_a_restarted_listener(two: Any, postgres_url: str) -> None:
    (a, _, service_a), (b, app_b, _) = two
    backplane_b = app_b.state.copilot.hub.backplane
    chat_id = httpx.post(f"{a}/copilot/chats", json={"title": "Bread"}).json()["chatSession"]["id"]
    on_a, on_b = await _hub(a, chat_id), await _hub(b, chat_id)
    try:
        # A client's own relay (typing, SendMessageAsync) crosses instances too.
        await on_a.client.send("SendUserTypingStateAsync", [chat_id, USER, True])
        await on_b.wait(lambda c: bool(c.of("ReceiveUserTypingState")))
        assert on_b.of("ReceiveUserTypingState") == [[chat_id, USER, True]]

        # The listening connection drops (as in a database restart): B reconnects and relays again.
        assert backplane_b.connects == 1
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (LISTENER_NAME,),
            ).fetchall()
        assert len(ended) == 2  # one listener per instance
        deadline = time.monotonic() + 15
        while backplane_b.connects < 2 or not backplane_b.listening.is_set():
            assert time.monotonic() < deadline, "B's backplane did not reconnect"
            await asyncio.sleep(0.05)

        service_a.queue(LONG)
        async with httpx.AsyncClient(base_url=f"{a}/copilot", timeout=30) as http_a:
            answer = await http_a.post(f"/chats/{chat_id}/messages", json=ask("Tell me about sourdough", chat_id))
            assert answer.status_code == 200, answer.text
        await on_b.wait(lambda c: _done(c, 1))
        await on_a.wait(lambda c: _done(c, 1))
        await asyncio.sleep(0.5)
    finally:
        await on_a.stop()
        await on_b.stop()
    assert on_b.received[1:] == on_a.received  # after the typing state, which its sender never gets
    final = [args[0] for args in on_b.of("ReceiveMessageUpdate")][-1]
    assert final["content"] == LONG  # all of it, though no NOTIFY could carry it


def test_a_document_uploaded_through_a_is_downloaded_and_answers_on_b_without_a_s_copy(
    two: Any, tmp_path: Path
) -> None:
    """Answering needs the chunks (pgvector) and the document's record, downloading its bytes: all three
    are in PostgreSQL, so A's uploads/ copy is not needed."""
    import re
    import shutil

    (a, _, _), (b, _, service_b) = two
    chat_id = httpx.post(f"{a}/copilot/chats", json={"title": "docs"}).json()["chatSession"]["id"]
    notes = b"# Opening hours\n\nThe Lyon bakery opens at seven every morning and closes at noon on Sunday.\n"
    uploaded = httpx.post(
        f"{a}/copilot/chats/{chat_id}/documents",
        files=[("formFiles", ("hours.md", notes, "text/markdown"))],
        timeout=60,
    )
    assert uploaded.status_code == 200, uploaded.text
    kept = [p for p in (tmp_path / "a").rglob("hours.md")]
    assert kept and not list((tmp_path / "b").rglob("hours.md"))  # A's working copy, what it ingested...
    for path in kept:
        shutil.rmtree(path.parent)  # ...is not needed: B serves and answers without it
    sources = httpx.get(f"{b}/copilot/chats/{chat_id}/documents").json()
    assert [(s["name"], s["size"]) for s in sources] == [("hours.md", len(notes))]
    downloaded = httpx.get(f"{b}/copilot/chats/{chat_id}/documents/{sources[0]['id']}")
    assert downloaded.status_code == 200 and downloaded.content == notes

    def cite(request: object) -> str:  # the model answers from the note it was given, citing its id
        record_id = re.search(r"\[([^\[\]]+#0)\]", request.prompt).group(1)  # type: ignore[attr-defined]
        return f"The bakery opens at seven [{record_id}]."

    service_b.queue(cite)
    answer = httpx.post(
        f"{b}/copilot/chats/{chat_id}/messages",
        json=ask("When does the Lyon bakery open every morning?", chat_id),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    bot = httpx.get(f"{a}/copilot/chats/{chat_id}/messages").json()[0]  # and A shows B's answer
    assert bot["content"].startswith("The bakery opens at seven")
    [citation] = bot["citations"]
    assert citation["sourceName"] == "hours.md" and "opens at seven" in citation["snippet"]
