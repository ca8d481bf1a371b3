"""Turns in progress on PostgreSQL: a turn whose server died (its heartbeat stopped) is finished as
interrupted by another instance, in the conversation itself, instead of vanishing or staying half-written.
The SQLite store (one process's) tracks nothing, and the engine's turns still work on it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_app.conversation import ConversationStore, Message, ToolCall
from kernel_app.conversation.pg_store import INTERRUPTED, PgConversationStore
from tests.support import postgres as pg_support

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


def _said(store: PgConversationStore, conversation_id: str) -> list[tuple[str, str]]:
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
