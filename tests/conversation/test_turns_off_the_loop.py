"""The event loop serves other turns while the conversation store works (kernel_app.conversation.off_loop).

On PostgreSQL each store call of a turn is a round trip; run on the event loop, one server would serve
nothing else meanwhile. A turn whose ``start_turn`` is held (tests/support/held_store.py) must not keep
another conversation's turn from completing, and a turn cancelled while its ``start_turn`` runs in its
thread must not leave a turn recorded as in progress. Events, not timings: nothing here depends on the
machine's speed. "sqlite as postgresql" runs the same engine paths without a database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationEngine, ConversationStore
from kernel_app.conversation.pg_store import PgConversationStore
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from tests.support import postgres as pg_support
from tests.support.held_store import HOLD_S, HeldStore

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

ANSWER = "Croissants sell best before nine."


@pytest.fixture(params=["sqlite as postgresql", pytest.param("postgresql", marks=pytest.mark.e2e)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HeldStore]:
    if request.param == "postgresql":
        inner: ConversationStore | PgConversationStore = PgConversationStore(
            request.getfixturevalue("postgres_url"), path=tmp_path / "conversations.sqlite3"
        )
        held = HeldStore(inner)
    else:
        inner = ConversationStore(tmp_path / "conversations.sqlite3")
        held = HeldStore(inner, as_postgresql=True)
    try:
        yield held
    finally:
        inner.close()


@pytest.fixture
def engine(store: HeldStore, tmp_path: Path) -> ConversationEngine:
    service = ScriptedChatCompletion(default=ANSWER)
    kernel = build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=service).kernel
    return ConversationEngine(kernel, store)  # type: ignore[arg-type]  # the held store passes calls through


async def _until(condition: Callable[[], bool]) -> None:
    """Wait, without holding the loop, until ``condition()`` (bounded, so a broken change fails, not hangs)."""
    for _ in range(int(HOLD_S * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never came true")


async def test_another_turn_completes_while_a_turn_waits_for_the_store(
    engine: ConversationEngine, store: HeldStore
) -> None:
    held, other = engine.create().id, engine.create().id
    store.hold(held)
    first = asyncio.create_task(engine.send(held, "When do croissants sell?"))
    await _until(store.entered.is_set)  # its start_turn runs, held, in a thread

    second = await engine.send(other, "And on Sundays?")

    assert second.error is None and second.text == ANSWER
    assert not first.done()  # still held: the second turn went by it
    store.release()
    assert (await first).text == ANSWER
    assert not store.gave_up  # released by the test, not by the hold's bound
    assert [m.role for m in store.messages(held)] == ["user", "assistant"]


async def test_a_turn_cancelled_while_it_starts_leaves_no_turn_in_progress(
    engine: ConversationEngine, store: HeldStore
) -> None:
    held = engine.create().id
    store.hold(held)
    turn = asyncio.create_task(engine.send(held, "When do croissants sell?"))
    await _until(store.entered.is_set)
    turn.cancel()  # the client went away; the thread goes on and records the turn as in progress
    with pytest.raises(asyncio.CancelledError):
        await turn

    store.release()
    await _until(lambda: bool(store.ended))  # ended once its start_turn returned, in a thread

    assert store.ended == store.started
    assert store.mark_interrupted_turns(older_than=0) == 0  # no row left for another instance to mark
    assert store.messages(held) == []  # nothing was said, nothing is kept
    if store.backend == "postgresql" and hasattr(store, "running_turns"):
        assert store.running_turns() == []  # the heartbeat keeps nothing alive
