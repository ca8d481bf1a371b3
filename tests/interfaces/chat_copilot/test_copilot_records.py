"""chat-copilot's records contract, run on both backends: ``copilot.sqlite3`` beside the conversation
store, and PostgreSQL (shared by every instance with ``database_url``). Each test gets an empty store of
each kind from :func:`open_records`, the factory the server uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel_app.interfaces.server.chat_copilot.records import DocumentRecord, ViewMessage, open_records
from kernel_app.providers.postgres import schema_version
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened = open_records(tmp_path / "memory" / "conversations.sqlite3", url)
    yield opened
    opened.close()


def test_the_factory_picks_the_backend_the_setting_names(records: Any, request: pytest.FixtureRequest) -> None:
    assert records.backend == request.node.callspec.params["records"]


def test_without_database_url_the_records_stay_beside_the_conversation_store(tmp_path: Path) -> None:
    records = open_records(tmp_path / "memory" / "conversations.sqlite3")
    try:
        records.add_chat("c1")
    finally:
        records.close()
    assert (tmp_path / "memory" / "copilot.sqlite3").is_file()


def test_chats_are_added_once_updated_and_listed(records: Any) -> None:
    first = records.add_chat("c1", system_description="You bake.", memory_balance=0.3)
    again = records.add_chat("c1", system_description="ignored")  # adding twice keeps the first
    assert again == first and (first.system_description, first.memory_balance) == ("You bake.", 0.3)
    records.add_chat("c2")
    assert sorted(records.chat_ids()) == ["c1", "c2"]
    records.update_chat("c1", memory_balance=0.9)  # the other field stays
    records.update_chat("c2", system_description="Be brief.")
    assert (records.chat("c1").system_description, records.chat("c1").memory_balance) == ("You bake.", 0.9)
    assert (records.chat("c2").system_description, records.chat("c2").memory_balance) == ("Be brief.", 0.5)
    assert records.chat("nope") is None


def test_participants_join_once(records: Any) -> None:
    records.add_chat("c1")
    assert records.join("c1", "ana") is True
    assert records.join("c1", "ana") is False
    assert records.join("c1", "bo") is True
    assert sorted(records.participants("c1")) == ["ana", "bo"]
    assert records.participants("c2") == []


def test_messages_keep_their_order_fields_and_are_replaced_by_id(records: Any) -> None:
    records.add_chat("c1")
    at = 1_700_000_000.0
    question = records.save(ViewMessage("c1", 0, "ana", "Ana", "When?", created_at=at))
    reply = ViewMessage("c1", 1, "bot", "Kernel App", "", created_at=at)  # the same time: written order wins
    records.save(reply)
    reply.content = "At nine."
    reply.citations = [{"link": "hours.md", "sourceName": "hours.md", "snippet": "nine", "relevanceScore": 0.8}]
    reply.token_usage = {"responseCompletion": 3}
    records.save(reply)  # the final reply replaces the streamed one, keeping its place
    records.save(ViewMessage("c2", 0, "bo", "Bo", "elsewhere"))
    listed = records.messages("c1")
    assert [(m.id, m.content) for m in listed] == [(question.id, "When?"), (reply.id, "At nine.")]
    got = records.message(reply.id)
    assert got == reply  # every field back as written: citations, usage, type, time
    assert records.message("nope") is None


def test_covered_store_messages(records: Any) -> None:
    records.add_chat("c1")
    records.cover("c1", [1, 2])
    records.cover("c1", [2, 3])
    records.cover("c1", [])
    assert records.covered("c1") == {1, 2, 3}
    assert records.covered("c2") == set()


def test_documents_are_listed_in_order_and_replaced_by_id(records: Any) -> None:
    records.add_chat("c1")
    first = DocumentRecord("d1", "c1", "hours.md", 120, 2, "ana", 10.0)
    records.add_document(first)
    records.add_document(DocumentRecord("d2", "c1", "menu.pdf", 4_000_000_000, 40, "bo", 11.0))  # > 32 bits
    records.add_document(DocumentRecord("d1", "c1", "hours.md", 150, 3, "ana", 12.0))  # uploaded again
    assert [(d.id, d.size, d.chunks) for d in records.documents("c1")] == [("d2", 4_000_000_000, 40), ("d1", 150, 3)]
    assert records.documents("c2") == []


def test_only_the_postgres_records_keep_a_document_s_bytes(records: Any) -> None:
    """On one server the bytes stay in uploads/; in the database every server can serve them."""
    records.add_chat("c1")
    records.add_document(DocumentRecord("d1", "c1", "hours.md", 3, 1, "ana", 10.0), b"\x00ab")
    shared = records.backend == "postgresql"
    assert records.document_content("d1") == (b"\x00ab" if shared else None)
    records.add_document(DocumentRecord("d1", "c1", "hours.md", 3, 2, "ana", 11.0))  # no bytes: the kept stay
    assert records.document_content("d1") == (b"\x00ab" if shared else None)
    assert records.document_content("nope") is None
    records.delete_chat("c1")
    assert records.document_content("d1") is None


def test_deleting_a_chat_removes_everything_it_had(records: Any) -> None:
    for chat in ("c1", "c2"):
        records.add_chat(chat)
        records.join(chat, "ana")
        records.save(ViewMessage(chat, 0, "ana", "Ana", "hi"))
        records.cover(chat, [1])
        records.add_document(DocumentRecord(f"d-{chat}", chat, "a.md", 1, 1, "ana", 1.0))
    records.delete_chat("c1")
    assert records.chat("c1") is None and records.chat_ids() == ["c2"]
    assert (records.participants("c1"), records.messages("c1"), records.covered("c1"), records.documents("c1")) == (
        [],
        [],
        set(),
        [],
    )
    assert len(records.messages("c2")) == 1 and records.documents("c2")  # the other chat is untouched


@pytest.mark.e2e
def test_postgres_records_are_shared_and_have_their_own_migrations(postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    a = open_records(tmp_path / "a" / "conversations.sqlite3", postgres_url)
    b = open_records(tmp_path / "b" / "conversations.sqlite3", postgres_url)  # a second instance
    try:
        a.add_chat("c1")
        a.save(ViewMessage("c1", 0, "ana", "Ana", "hi"))
        assert b.chat_ids() == ["c1"] and [m.content for m in b.messages("c1")] == ["hi"]
        assert b.join("c1", "ana") is True and a.join("c1", "ana") is False  # one INSERT decides
    finally:
        a.close()
        b.close()
    with psycopg.connect(postgres_url) as conn:
        assert schema_version(conn, "copilot") == 2
    assert not (tmp_path / "a" / "copilot.sqlite3").exists()  # nothing local with database_url
