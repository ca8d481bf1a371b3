"""How many round trips to PostgreSQL a conversation turn makes: two (start_turn, finish_turn).

Each round trip is a wait of the server's event loop and work for a PostgreSQL backend, and a turn's share
of the database's CPU decides how far servers scale out on one database (bench/bench_two_servers.py,
docs/scale-out.md). Counted on the wire (tests/support/pg_wire.py), not timed: a statement added to a turn
fails here, whatever the machine's load.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationEngine, ConversationNotFoundError
from kernel_app.conversation.pg_store import PgConversationStore
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from tests.support import postgres as pg_support
from tests.support.pg_wire import WireCounter

pytestmark = pytest.mark.e2e  # a real PostgreSQL

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

WARM_UP = 8  # psycopg prepares a statement on its 6th execution on a connection (one more round trip, once)


@pytest.fixture
def wire(postgres_url: str) -> Iterator[WireCounter]:
    with WireCounter(postgres_url) as counter:
        yield counter


@pytest.fixture
def engine(wire: WireCounter, tmp_path: Path) -> Iterator[ConversationEngine]:
    store = PgConversationStore(wire.url, path=tmp_path / "conversations.sqlite3")
    service = ScriptedChatCompletion(default="Croissants sell best before nine.")
    try:
        yield ConversationEngine(
            build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=service).kernel, store
        )
    finally:
        store.close()


async def test_a_turn_makes_two_round_trips_with_statements_prepared_on_the_server(
    engine: ConversationEngine, wire: WireCounter
) -> None:
    cid = engine.create().id  # untitled: the first turn's finish_turn names it, in the same statement
    for n in range(WARM_UP):
        assert (await engine.send(cid, f"When do croissants sell? ({n})")).error is None
    wire.reset()
    for n in range(5):
        await engine.send(cid, f"And on Sundays? ({n})")
    assert wire.round_trips == 2 * 5
    assert wire.statements == []  # every statement is prepared: a turn sends no SQL, only its parameters
    store = engine.store
    assert store.get(cid).title == "When do croissants sell? (0)"
    assert store.get(cid).message_count == 2 * (WARM_UP + 5)
    assert store.mark_interrupted_turns(older_than=0) == 0  # every turn's in-progress mark is gone


async def test_a_turn_on_another_owners_conversation_makes_one_round_trip_and_changes_nothing(
    engine: ConversationEngine, wire: WireCounter
) -> None:
    cid = engine.create(owner="entra:t:alice").id
    await engine.send(cid, "Hi")
    before = engine.store.get(cid)
    wire.reset()
    events = engine.stream(cid, "What did Alice say?", owner="entra:t:bob")
    with pytest.raises(ConversationNotFoundError):
        await anext(events)
    assert wire.round_trips == 1  # start_turn checks the owner; there is no turn to end
    assert engine.store.get(cid) == before
    assert [m.content for m in engine.store.messages(cid)] == ["Hi", "Croissants sell best before nine."]
    assert engine.store.running_turns() == []
    assert engine.store.mark_interrupted_turns(older_than=0) == 0  # no turn was recorded
