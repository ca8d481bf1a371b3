"""The server answers other requests while a REST turn waits for the conversation store.

On PostgreSQL the store's calls of a turn run in a thread (kernel_app.conversation.off_loop): a turn
whose ``start_turn`` is held (tests/support/held_store.py, a SQLite store that says it is PostgreSQL's,
so that no database starts) must not keep the server from listing conversations or from answering
another conversation's turn. Events, not timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kernel_app.conversation import ConversationStore
from tests.support.held_store import HOLD_S, HeldStore
from tests.support.server import make_app
from tests.support.tool_scripted import ToolScripted

ANSWER = "Fresh bread every morning."


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, HeldStore]]:
    inner = ConversationStore(tmp_path / "conversations.sqlite3")
    store = HeldStore(inner, as_postgresql=True)
    app = make_app(tmp_path, ToolScripted(default=ANSWER), store=store)
    transport = httpx.ASGITransport(app=app)  # in this event loop: a store call on it would stop the test
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield http, store
    finally:
        inner.close()


async def test_other_requests_are_served_while_a_turn_waits_for_the_store(
    served: tuple[httpx.AsyncClient, HeldStore],
) -> None:
    http, store = served
    held = (await http.post("/v1/conversations", json={"title": "held"})).json()["id"]
    other = (await http.post("/v1/conversations", json={"title": "other"})).json()["id"]
    store.hold(held)
    said = {"content": "Why do people like our bakery?", "stream": False}
    first = asyncio.create_task(http.post(f"/v1/conversations/{held}/messages", json=said))
    for _ in range(int(HOLD_S * 100)):  # until its start_turn is held, in a thread
        if store.entered.is_set():
            break
        await asyncio.sleep(0.01)

    listed = await http.get("/v1/conversations")
    answered = await http.post(f"/v1/conversations/{other}/messages", json=said)

    assert listed.status_code == 200 and {c["id"] for c in listed.json()["data"]} == {held, other}
    assert answered.status_code == 200 and answered.json()["text"] == ANSWER
    assert not first.done()  # still held: both went by it
    store.release()
    assert (await first).json()["text"] == ANSWER
    assert not store.gave_up
