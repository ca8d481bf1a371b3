"""Round trips to PostgreSQL of a REST conversation turn, counted on the wire (tests/support/pg_wire.py):
two for a JSON answer (the engine's start_turn and finish_turn), three for a streamed one (its 404 must
come before the stream starts: one more read). Every store the app opens on ``database_url`` (memory,
decisions, uploads, the call log) is behind the same counter, so a round trip any of them adds to a turn
fails here. bench/bench_two_servers.py measures what they cost (docs/scale-out.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import open_conversation_store
from tests.support import postgres as pg_support
from tests.support.pg_wire import WireCounter
from tests.support.server import make_app
from tests.support.tool_scripted import ToolScripted

pytestmark = pytest.mark.e2e  # a real PostgreSQL

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

ANSWER = "Fresh bread every morning."
WARM_UP = 8  # psycopg prepares a statement on its 6th execution on a connection (one more round trip, once)


@pytest.fixture
async def client(postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, WireCounter]]:
    with WireCounter(postgres_url) as wire:
        store = open_conversation_store(tmp_path / "memory", database_url=wire.url)
        app = make_app(tmp_path, ToolScripted(default=ANSWER), Settings(database_url=wire.url), store=store)
        transport = httpx.ASGITransport(app=app)  # no lifespan: no heartbeat of running turns to count
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                yield http, wire
        finally:
            store.close()


@pytest.mark.parametrize(("stream", "round_trips"), [(False, 2), (True, 3)], ids=["json", "streamed"])
async def test_a_rest_turn_makes_two_round_trips_three_when_streamed(
    client: tuple[httpx.AsyncClient, WireCounter], stream: bool, round_trips: int
) -> None:
    http, wire = client
    cid = (await http.post("/v1/conversations", json={"title": "Bakery"})).json()["id"]
    said = {"content": "Why do people like our bakery?", "stream": stream}
    for _ in range(WARM_UP):
        answered = await http.post(f"/v1/conversations/{cid}/messages", json=said)
        assert answered.status_code == 200 and ANSWER in answered.text
    wire.reset()
    for _ in range(5):
        assert (await http.post(f"/v1/conversations/{cid}/messages", json=said)).status_code == 200
    assert wire.round_trips == round_trips * 5, wire.statements
    kept = (await http.get(f"/v1/conversations/{cid}")).json()
    assert kept["message_count"] == 2 * (WARM_UP + 5)


async def test_a_json_turn_on_a_missing_conversation_is_404_after_one_round_trip(
    client: tuple[httpx.AsyncClient, WireCounter],
) -> None:
    http, wire = client
    wire.reset()
    answered = await http.post("/v1/conversations/nope/messages", json={"content": "Hi", "stream": False})
    assert answered.status_code == 404 and "no conversation 'nope'" in answered.json()["error"]["message"]
    assert wire.round_trips == 1
