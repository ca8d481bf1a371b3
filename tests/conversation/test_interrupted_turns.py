"""Turns in progress on PostgreSQL: a turn whose server died (its heartbeat stopped) is finished as
interrupted by another instance, in the conversation itself, instead of vanishing or staying half-written.
The SQLite store (one process's) tracks nothing, and the engine's turns still work on it.

A turn whose client disconnects is finished as interrupted by the engine itself (``keep_if_cut``), on
both stores: what it produced is kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import (
    ApprovalNeeded,
    ConversationEngine,
    ConversationStore,
    Done,
    Message,
    TextDelta,
    ToolCall,
    open_conversation_store,
)
from kernel_app.conversation.interrupted import CALL_CUT_SHORT, CUT_SHORT
from kernel_app.conversation.pg_store import INTERRUPTED, PgConversationStore
from kernel_app.kernel.builder import build_kernel
from tests.support import postgres as pg_support
from tests.support.tool_scripted import ToolScripted, tools

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


@pytest.fixture
def two_instances(postgres_url: str, tmp_path: Path) -> Iterator[tuple[PgConversationStore, PgConversationStore]]:
    a = PgConversationStore(postgres_url, path=tmp_path / "a" / "conversations.sqlite3")
    b = PgConversationStore(postgres_url, path=tmp_path / "b" / "conversations.sqlite3")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _said(store: Any, conversation_id: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in store.messages(conversation_id)]


@pytest.mark.e2e
def test_a_turn_whose_owner_stopped_renewing_it_is_marked_interrupted_once(
    two_instances: tuple[PgConversationStore, PgConversationStore],
) -> None:
    a, b = two_instances
    assert a.owner != b.owner
    cid = a.create(title="Bread").id
    a.append_many(cid, [Message("user", "Hi"), Message("assistant", "Hello.")])
    a.begin_turn(cid, "When do we bake?")  # A dies here: its heartbeat stops

    assert b.mark_interrupted_turns(older_than=3600) == 0  # still within its lease
    assert b.mark_interrupted_turns(older_than=0) == 1
    assert _said(b, cid) == [
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", "When do we bake?"),
        ("assistant", INTERRUPTED),
    ]
    assert a.mark_interrupted_turns(older_than=0) == 0  # taken once, whoever sweeps next


@pytest.mark.e2e
def test_a_turn_cut_after_its_function_calls_were_stored_gets_only_the_interrupted_answer(
    two_instances: tuple[PgConversationStore, PgConversationStore],
) -> None:
    a, b = two_instances
    cid = a.create().id
    a.begin_turn(cid, "Add 1 and 2")
    call = ToolCall("c1", "Math.add", {"a": 1, "b": 2})
    a.append_many(
        cid,
        [
            Message("user", "Add 1 and 2"),
            Message("assistant", tool_calls=(call,)),
            Message("tool", "3", "Math.add", "c1"),
        ],
    )
    assert b.mark_interrupted_turns(older_than=0) == 1
    roles = [role for role, _ in _said(b, cid)]
    assert roles == ["user", "assistant", "tool", "assistant"]  # the user's words are not repeated
    assert _said(b, cid)[-1] == ("assistant", INTERRUPTED)


@pytest.mark.e2e
def test_a_turn_started_and_never_finished_is_marked_interrupted(
    two_instances: tuple[PgConversationStore, PgConversationStore],
) -> None:
    """start_turn, the engine's one round trip to begin a turn, records the turn as begin_turn does."""
    a, b = two_instances
    cid = a.create().id
    a.append_many(cid, [Message("user", "Hi"), Message("assistant", "Hello.")])
    started = a.start_turn(cid, "When do we bake?")  # A dies here, before finish_turn
    assert a.running_turns() == [started.id]
    assert b.mark_interrupted_turns(older_than=0) == 1
    assert _said(b, cid)[2:] == [("user", "When do we bake?"), ("assistant", INTERRUPTED)]

    finished = b.start_turn(cid, "And now?")  # finish_turn ends the record with the messages, at once
    b.finish_turn(finished.id, cid, [Message("user", "And now?"), Message("assistant", "At four.")])
    assert b.running_turns() == []
    assert a.mark_interrupted_turns(older_than=0) == 0
    assert _said(a, cid)[-2:] == [("user", "And now?"), ("assistant", "At four.")]


@pytest.mark.e2e
def test_running_renewed_and_finished_turns_are_left_alone(
    two_instances: tuple[PgConversationStore, PgConversationStore],
) -> None:
    a, b = two_instances
    cid = a.create().id
    mine = b.begin_turn(cid, "B's own turn")
    assert b.mark_interrupted_turns(older_than=0) == 0  # B's running turn is B's, not a dead one
    b.end_turn(mine)

    # A's turn is answered and stored, but its row outlives it (A died before its DELETE, or the database
    # went away just then): to B it looks dead, yet it is only forgotten, not marked.
    a.begin_turn(cid, "Hello")
    a.append_many(cid, [Message("user", "Hello"), Message("assistant", "Hi.")])
    assert b.mark_interrupted_turns(older_than=0) == 0  # answered: only forgotten
    assert _said(b, cid) == [("user", "Hello"), ("assistant", "Hi.")]

    a.begin_turn(cid, "Still going")
    time.sleep(1.2)
    a.keep_turns_alive()  # A's heartbeat: the turn's lease starts again
    assert b.mark_interrupted_turns(older_than=1.0) == 0
    time.sleep(1.2)  # and without one, the lease runs out
    assert b.mark_interrupted_turns(older_than=1.0) == 1


def test_the_sqlite_store_tracks_no_turns(tmp_path: Path) -> None:
    with ConversationStore(tmp_path / "c.sqlite3") as store:
        cid = store.create().id
        turn = store.begin_turn(cid, "Hi")
        store.keep_turns_alive()
        assert store.mark_interrupted_turns(older_than=0) == 0
        store.end_turn(turn)
        store.ping()
        assert store.messages(cid) == []


# region turns cut short by their client (the engine's keep_if_cut), on both stores


@pytest.fixture(params=["local", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    store = open_conversation_store(tmp_path / "memory", database_url=url)
    try:
        yield store
    finally:
        store.close()


def _engine(store: Any, tmp_path: Path, *answers: Any) -> ConversationEngine:
    service = ToolScripted(list(answers))
    return ConversationEngine(
        build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=service).kernel, store
    )


async def test_a_turn_closed_mid_answer_keeps_the_text_streamed_so_far_marked_interrupted(
    any_store: Any, tmp_path: Path
) -> None:
    engine = _engine(any_store, tmp_path, "Croissants sell best before nine every morning.")
    cid = engine.create().id
    events = engine.stream(cid, "When do croissants sell?", keep_if_cut=True)
    words = [await anext(events) for _ in range(3)]  # the scripted model streams word by word
    assert all(isinstance(e, TextDelta) for e in words)
    await events.aclose()  # the client stopped reading (an SSE response whose client left)
    assert _said(any_store, cid) == [
        ("user", "When do croissants sell?"),
        ("assistant", f"Croissants sell best\n\n{CUT_SHORT}"),
    ]
    assert any_store.get(cid).title == "When do croissants sell?"
    assert any_store.mark_interrupted_turns(older_than=0) == 0  # the turn is finished, not left to a sweep


async def test_a_turn_cancelled_while_a_call_waits_for_approval_keeps_the_call_marked_interrupted(
    any_store: Any, tmp_path: Path
) -> None:
    engine = _engine(any_store, tmp_path, tools(("memory-save", {"input": "rye", "collection": "Notes"})))
    cid = engine.create().id
    seen: list[Any] = []

    async def never(_: ApprovalNeeded) -> bool:
        await asyncio.Event().wait()  # nobody answers: the client is gone
        return False

    async def turn() -> None:
        async for event in engine.stream(cid, "Save rye", approve=never, keep_if_cut=True):
            seen.append(event)

    task = asyncio.create_task(turn())
    while not any(isinstance(e, ApprovalNeeded) for e in seen):
        await asyncio.sleep(0.01)
    task.cancel()  # a non-streamed request's client left (unless_disconnected cancels its task)
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = any_store.messages(cid)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "Save rye"),
        ("assistant", ""),
        ("tool", CALL_CUT_SHORT),  # the history the model reads next needs a result for every call
        ("assistant", CUT_SHORT),
    ]
    assert stored[1].tool_calls[0].function == "memory.save" and stored[2].call_id == stored[1].tool_calls[0].id
    assert stored[2].name == "memory.save"


async def test_without_keep_if_cut_a_cut_turn_leaves_nothing(any_store: Any, tmp_path: Path) -> None:
    """The REPL's Ctrl-C: the unanswered question leaves the conversation, as before."""
    engine = _engine(any_store, tmp_path, "Croissants sell best before nine.")
    cid = engine.create().id
    events = engine.stream(cid, "When?")
    await anext(events)
    await events.aclose()
    assert any_store.messages(cid) == []


async def test_a_turn_that_ended_is_not_marked_when_its_consumer_leaves_after(any_store: Any, tmp_path: Path) -> None:
    engine = _engine(any_store, tmp_path, "Before nine.")
    cid = engine.create().id
    events = engine.stream(cid, "When?", keep_if_cut=True)
    async for event in events:
        if isinstance(event, Done):
            break  # the client left on the last event: the turn is stored whole, once
    await events.aclose()
    assert _said(any_store, cid) == [("user", "When?"), ("assistant", "Before nine.")]


# endregion
