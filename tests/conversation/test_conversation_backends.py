"""The conversation store's contract, run on both backends: the local SQLite file and PostgreSQL.

``open_backend()`` opens a store of the parametrized backend through ``open_conversation_store``, the
factory every surface uses; each call is a separate store object (a separate connection or pool), as a
second server on the same data would be. The PostgreSQL one lives in a fresh database on the embedded
server of tests/support/postgres.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kernel_app.conversation import (
    ConversationNotFoundError,
    Message,
    ToolCall,
    default_store_path,
    open_conversation_store,
)
from kernel_app.conversation.pg_store import MIGRATIONS, NAMESPACE, PgConversationStore
from kernel_app.conversation.store import ConversationStore, ConversationStoreError
from kernel_app.providers.postgres import DatabaseUnavailableError, SchemaTooNewError
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

StoreFactory = Callable[[], Any]


@pytest.fixture(params=["local", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened: list[Any] = []

    def factory() -> Any:
        store = open_conversation_store(tmp_path / "memory", database_url=url)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_backend: StoreFactory) -> Any:
    return open_backend()


def test_the_factory_picks_the_backend_the_setting_names(
    store: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    expected = request.node.callspec.params["open_backend"]
    assert store.backend == expected
    assert isinstance(store, PgConversationStore if expected == "postgresql" else ConversationStore)
    # Teams' and chat-copilot's own files stay beside the local store's path on either backend.
    assert Path(store.path) == default_store_path(tmp_path / "memory")


def test_conversations_and_messages_round_trip(open_backend: StoreFactory) -> None:
    store = open_backend()
    first = store.create(title="Bakery", service="local", model="SmolLM2")
    second = store.create()
    store.append(second.id, Message("user", "hi"))
    call = ToolCall("call_1", "Math.add", {"a": 2, "b": 3})
    stored = store.append_many(
        first.id,
        [
            Message("user", "2+3?"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "5", name="Math.add", call_id="call_1"),
            Message("assistant", "5", tokens=1),
        ],
    )
    assert [m.seq for m in stored] == sorted({m.seq for m in stored})  # increasing, none twice
    store.close()

    store = open_backend()  # another store object on the same data: everything was committed
    assert [c.id for c in store.list()] == [first.id, second.id]  # most recently updated first
    got = store.get(first.id)
    assert (got.title, got.service, got.model, got.message_count) == ("Bakery", "local", "SmolLM2", 4)
    assert got.created_at == first.created_at and got.updated_at >= got.created_at
    messages = store.messages(first.id)
    assert messages == stored
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1].tool_calls == (call,) and messages[2].call_id == "call_1" and messages[3].tokens == 1
    assert [m.content for m in store.messages(first.id, after=messages[1].seq)] == ["5", "5"]
    assert store.exists(first.id) and not store.exists("nope")
    assert store.latest().id == first.id
    assert store.delete(first.id) and not store.delete(first.id)
    assert store.messages(first.id) == []
    with pytest.raises(ConversationNotFoundError, match="chat --list"):
        store.get(first.id)
    with pytest.raises(ConversationNotFoundError):
        store.append(first.id, Message("user", "lost?"))
    assert [c.id for c in store.list()] == [second.id]


def test_update_renames_and_moves_the_conversation_to_the_top(store: Any) -> None:
    older = store.create(title="old", service="local")
    newer = store.create(title="new")
    assert [c.id for c in store.list()] == [newer.id, older.id]
    store.update(older.id, title="renamed")
    assert [c.id for c in store.list()] == [older.id, newer.id]
    got = store.get(older.id)
    assert (got.title, got.service) == ("renamed", "local")  # what was not given is kept
    store.update("missing", title="x")  # nothing to update: no error, as before
    assert [c.id for c in store.list(limit=1, offset=1)] == [newer.id]


def test_a_duplicate_id_and_an_unknown_role_are_refused_and_store_nothing(store: Any) -> None:
    store.create(id="c1", title="first")
    with pytest.raises(ConversationStoreError, match="'c1' already exists"):
        store.create(id="c1")
    assert store.get("c1").title == "first"
    with pytest.raises(ValueError, match="unknown role 'robot'"):
        store.append_many("c1", [Message("user", "kept?"), Message("robot", "beep")])
    assert store.messages("c1") == [] and store.get("c1").message_count == 0


def test_two_stores_racing_on_one_conversation_lose_and_reorder_nothing(open_backend: StoreFactory) -> None:
    """Two instances (two store objects, each with its own connections) append at once, from several
    threads each: every message is kept once, and each writer's messages keep the order it wrote them."""
    stores = [open_backend(), open_backend()]
    stores[0].create(id="shared")
    writers, per_writer = 6, 15
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(number: int) -> None:
        store = stores[number % 2]
        try:
            start.wait()
            for k in range(per_writer):
                if k % 5 == 4:  # some turns are several messages in one transaction
                    store.append_many(
                        "shared", [Message("assistant", f"w{number}-{k}a"), Message("tool", f"w{number}-{k}b")]
                    )
                else:
                    store.append("shared", Message("user", f"w{number}-{k}"))
        except BaseException as error:  # reported below: a thread's exception would vanish
            failures.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures

    for store in stores:  # both instances see the same, complete history
        messages = store.messages("shared")
        seqs = [m.seq for m in messages]
        assert seqs == sorted(set(seqs))
        contents = [m.content for m in messages]
        assert len(contents) == len(set(contents)) == writers * (per_writer + per_writer // 5)
        for number in range(writers):
            own = [c for c in contents if c.startswith(f"w{number}-")]
            expected = []
            for k in range(per_writer):
                expected += [f"w{number}-{k}a", f"w{number}-{k}b"] if k % 5 == 4 else [f"w{number}-{k}"]
            assert own == expected
        for position, content in enumerate(contents):  # a multi-message append stays in one piece
            if content.endswith("a"):
                assert contents[position + 1] == content[:-1] + "b"
        assert store.get("shared").message_count == len(messages)


# region a turn's start and finish (the engine's two calls a turn)


def test_a_turn_starts_with_its_conversation_and_messages_and_finishes_storing_its_own(
    open_backend: StoreFactory,
) -> None:
    store, other = open_backend(), open_backend()  # other: a second server on the same data
    conversation = store.create()
    store.append_many(conversation.id, [Message("user", "Hi"), Message("assistant", "Hello.")])
    started = store.start_turn(conversation.id, "When do we bake?")
    assert (started.conversation.id, started.conversation.message_count) == (conversation.id, 2)
    assert started.messages == store.messages(conversation.id)

    said = [Message("user", "When do we bake?"), Message("assistant", "At four.")]
    stored = store.finish_turn(started.id, conversation.id, said, title="Baking")
    assert store.messages(conversation.id)[2:] == stored
    assert stored[0].seq > started.messages[-1].seq and stored[1].seq > stored[0].seq
    assert store.get(conversation.id).title == "Baking"
    assert other.mark_interrupted_turns(older_than=0) == 0  # finished: nothing left to mark

    started = store.start_turn(conversation.id, "Thanks")
    assert store.finish_turn(started.id, conversation.id, [], title=None) == []  # nothing to store: touched
    assert (store.get(conversation.id).title, len(store.messages(conversation.id))) == ("Baking", 4)
    assert other.mark_interrupted_turns(older_than=0) == 0


def test_a_turn_on_another_owners_conversation_is_not_found_and_changes_nothing(
    open_backend: StoreFactory,
) -> None:
    store, other = open_backend(), open_backend()
    conversation = store.create(owner="entra:t:alice")
    store.append(conversation.id, Message("user", "Hi"))
    before = store.get(conversation.id)
    with pytest.raises(ConversationNotFoundError):
        store.start_turn(conversation.id, "What did Alice say?", owner="entra:t:bob")
    with pytest.raises(ConversationNotFoundError):
        store.start_turn("missing", "Hi")
    assert store.get(conversation.id) == before
    assert [m.content for m in store.messages(conversation.id)] == ["Hi"]
    assert other.mark_interrupted_turns(older_than=0) == 0  # no turn was recorded
    started = store.start_turn(conversation.id, "Hi again", owner="entra:t:alice")
    assert started.conversation == before
    store.end_turn(started.id)


# endregion

# region owners (issue 22: each user's own data)

ALICE, BOB = "entra:t:alice", "key:0123456789abcdef"


def test_each_owner_gets_lists_and_deletes_only_their_own(store: Any) -> None:
    mine = store.create(title="mine", owner=ALICE)
    theirs = store.create(title="theirs", owner=BOB)
    laptop = store.create(title="laptop")  # no owner given: the local user's, as before
    assert (mine.owner, laptop.owner) == (ALICE, "local")
    assert [c.id for c in store.list(owner=ALICE)] == [mine.id]
    assert [c.id for c in store.list(owner="local")] == [laptop.id]
    assert {c.id for c in store.list()} == {mine.id, theirs.id, laptop.id}  # no owner: everyone's (the CLI)
    assert store.get(mine.id, owner=ALICE).owner == ALICE
    assert store.latest(owner=BOB).id == theirs.id
    for reading in (lambda: store.get(theirs.id, owner=ALICE), lambda: store.get("nothing", owner=ALICE)):
        with pytest.raises(ConversationNotFoundError) as raised:  # another's reads as one that does not exist
            reading()
        assert "no conversation" in str(raised.value)
    assert not store.exists(theirs.id, owner=ALICE) and store.exists(theirs.id, owner=BOB)
    assert store.delete(theirs.id, owner=ALICE) is False
    assert store.get(theirs.id).title == "theirs"  # still there
    assert store.delete(theirs.id, owner=BOB) is True
    assert not store.exists(theirs.id)


def test_sqlite_conversations_kept_before_owners_belong_to_the_local_user(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "conversations.sqlite3"
    old = sqlite3.connect(path)  # a schema-1 file, as Kernel App wrote it before owners
    old.executescript(
        "CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, "
        "updated_at REAL NOT NULL, service TEXT NOT NULL DEFAULT '', model TEXT NOT NULL DEFAULT '');"
        "CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL "
        "REFERENCES conversations (id) ON DELETE CASCADE, role TEXT NOT NULL, content TEXT NOT NULL DEFAULT '', "
        "name TEXT, call_id TEXT, tool_calls TEXT, tokens INTEGER, created_at REAL NOT NULL);"
        "INSERT INTO conversations VALUES ('old1', 'kept', 1.0, 2.0, 'local', 'm');"
        "INSERT INTO messages (conversation_id, role, content, created_at) VALUES ('old1', 'user', 'hi', 1.5);"
        f"PRAGMA application_id = {0x4B414356}; PRAGMA user_version = 1;"
    )
    old.close()
    with ConversationStore(path) as store:
        kept = store.get("old1", owner="local")
        assert (kept.title, kept.owner, kept.message_count) == ("kept", "local", 1)
        assert store.list(owner="entra:t:alice") == []
    with ConversationStore(path) as again:  # upgraded once: opening it again changes nothing
        assert again._read("PRAGMA user_version")[0][0] == 2
        assert again.get("old1").owner == "local"


def test_postgres_conversations_kept_before_owners_belong_to_the_local_user(postgres_url: str, tmp_path: Path) -> None:
    from kernel_app.providers.postgres import migrate

    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the database as the previous version left it
        migrate(conn, NAMESPACE, MIGRATIONS[:2])
        conn.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES ('old1', 'kept', 1.0, 2.0)")
    with open_conversation_store(tmp_path, database_url=postgres_url) as store:
        kept = store.get("old1", owner="local")
        assert (kept.title, kept.owner) == ("kept", "local")
        assert store.list(owner="entra:t:alice") == []


# endregion

# region PostgreSQL only


def test_postgres_numbers_messages_per_conversation_from_one(postgres_url: str, tmp_path: Path) -> None:
    with open_conversation_store(tmp_path, database_url=postgres_url) as store:
        a, b = store.create(), store.create()
        assert [m.seq for m in store.append_many(a.id, [Message("user", "1"), Message("assistant", "2")])] == [1, 2]
        assert store.append(b.id, Message("user", "x")).seq == 1
        assert store.append(a.id, Message("user", "3")).seq == 3


def test_postgres_turn_rows_skip_the_disk_wait_and_messages_keep_it(postgres_url: str, tmp_path: Path) -> None:
    # A durable COMMIT waits for a WAL flush; the turns-in-progress rows do not (PgConversationStore.
    # _bookkeeping: connections of their own), and the store's connection stays durable for the messages.
    store = PgConversationStore(postgres_url, path=tmp_path / "conversations.sqlite3", max_connections=1)
    try:
        conversation = store.create()
        turn = store.begin_turn(conversation.id, "Hello")
        with psycopg.connect(postgres_url) as other:  # committed: another instance sees it at once
            row = other.execute("SELECT said FROM conversation_turns WHERE id = %s", (turn,)).fetchone()
            assert row == ("Hello",)
        with store._bookkeeping() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
        with store._statement() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        store.append_many(conversation.id, [Message("user", "Hello"), Message("assistant", "Hi")])
        store.end_turn(turn)
        assert [m.content for m in store.messages(conversation.id)] == ["Hello", "Hi"]
        assert store.running_turns() == []
    finally:
        store.close()


def test_postgres_tables_come_from_the_conversations_migrations(postgres_url: str, tmp_path: Path) -> None:
    with open_conversation_store(tmp_path, database_url=postgres_url):
        pass
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT version FROM kernel_app_schema WHERE namespace = %s", (NAMESPACE,)).fetchone()
        assert row == (len(MIGRATIONS),)
        conn.execute("UPDATE kernel_app_schema SET version = version + 1 WHERE namespace = %s", (NAMESPACE,))
    too_new = f"'conversations' tables are at schema version {len(MIGRATIONS) + 1}"
    with pytest.raises(SchemaTooNewError, match=too_new):
        open_conversation_store(tmp_path, database_url=postgres_url)


def test_an_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/nowhere?host={tmp_path}"  # a socket folder with no server in it
    with pytest.raises(DatabaseUnavailableError, match="cannot connect to PostgreSQL") as raised:
        open_conversation_store(tmp_path, database_url=url)
    assert "\n" not in str(raised.value)


# endregion
