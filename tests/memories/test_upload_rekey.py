"""Uploads ingested before their chunks had a stable name (issue 19) carry the receiving server's path as
their ``source`` and id. The first open of a store (both backends) names them ``uploads/COLLECTION/NAME``,
once, so a later upload of the same name replaces them; dropping a collection deletes its uploads."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from memories import HashingEmbedder, open_store
from memories.ingest import ingest
from memories.uploads import legacy_upload_source, rekey_plan, upload_source
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

HOURS = "# Opening hours\n\nThe Lyon bakery opens at seven every morning.\n\n## Sunday\n\nIt closes at noon.\n"


def test_only_absolute_paths_ending_in_the_collection_s_upload_folder_are_old_uploads() -> None:
    assert legacy_upload_source("Shop", "/srv/a/memory/uploads/Shop/hours.md") == "uploads/Shop/hours.md"
    assert legacy_upload_source("Shop", "C:\\data\\memory\\uploads\\Shop\\hours.md") == "uploads/Shop/hours.md"
    assert legacy_upload_source("Shop", "/srv/a/memory/uploads/Other/hours.md") is None  # another collection
    assert legacy_upload_source("Shop", "/home/me/notes/hours.md") is None  # ingested from the user's folder
    assert legacy_upload_source("Shop", "uploads/Shop/hours.md") is None  # relative: already stable
    assert legacy_upload_source("Shop", "/srv/uploads/Shop/my notes?.md") is None  # not a name uploads write


def test_the_newest_set_of_one_document_stays_and_is_renamed_by_chunk_number() -> None:
    a, b = "/srv/a/memory/uploads/Shop/hours.md", "/srv/b/memory/uploads/Shop/hours.md"
    rows = [
        (f"{a}#0", {"source": a, "chunk": 0}, 10.0),
        (f"{a}#1", {"source": a, "chunk": 1}, 10.0),
        ("0123abcd#0", {"source": b, "chunk": 0}, 20.0),  # a long path's id is its hash: the number is kept
        ("note", {"source": "/home/me/notes.md"}, 30.0),
        ("plain", {}, 30.0),
    ]
    plan = rekey_plan("Shop", rows)
    assert sorted(plan.deletes) == [f"{a}#0", f"{a}#1"]
    assert [(r.old_id, r.new_id, r.metadata) for r in plan.renames] == [
        ("0123abcd#0", "uploads/Shop/hours.md#0", {"source": "uploads/Shop/hours.md", "chunk": 0})
    ]
    stable = [("uploads/Shop/hours.md#0", {"source": "uploads/Shop/hours.md", "chunk": 0}, 40.0)]
    assert not rekey_plan("Shop", stable)  # nothing to do
    newer_old = rekey_plan("Shop", [*stable, (f"{a}#0", {"source": a, "chunk": 0}, 50.0)])
    assert newer_old.deletes == ["uploads/Shop/hours.md#0"] and [r.old_id for r in newer_old.renames] == [f"{a}#0"]


@pytest.fixture(params=["local", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """``reopen()``: the store of the parametrized backend, opened as a program that never re-keyed it
    would find it (the pass forgotten), so each open runs the pass again."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened: list[Any] = []

    def factory() -> Any:
        opened_before = bool(opened)
        for store in opened:
            store.close()
        opened.clear()
        if url is None and (tmp_path / "memory" / "memory.sqlite3").exists():
            with sqlite3.connect(tmp_path / "memory" / "memory.sqlite3") as conn:
                conn.execute("DELETE FROM passes")
        elif url is not None and opened_before:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("UPDATE kernel_app_schema SET version = 2 WHERE namespace = 'memory' AND version > 2")
        store = open_store(tmp_path / "memory", database_url=url, embedder=HashingEmbedder(64))
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def _old_upload(store: Any, server_folder: Path, text: str) -> None:
    """An upload as a server ingested it before: named by the file's resolved path under its folder."""
    path = server_folder / "uploads" / "Shop" / "hours.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert ingest(store, "Shop", [path]).added == 1


def test_old_uploads_are_renamed_once_and_a_new_upload_replaces_them(reopen: Callable[[], Any], tmp_path: Path) -> None:
    store = reopen()
    _old_upload(store, tmp_path / "a", HOURS)  # through server A...
    _old_upload(store, tmp_path / "b", HOURS.replace("seven", "eight"))  # ...and later through B: two sets
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe oven is too small.\n")
    ingest(store, "Shop", [notes])  # the user's own file: not an upload
    store.save("Shop", "saved by hand", id="hand")
    assert len(store.metadata("Shop")) == 2 + 2 + 1 + 1

    store = reopen()
    sources = {meta.get("source") for meta in store.metadata("Shop").values()}
    assert sources == {"uploads/Shop/hours.md", str(notes.resolve())} | {None}  # (the hand-saved one has none)
    hours = store.list("Shop", limit=None, where={"source": "uploads/Shop/hours.md"})
    assert [r.id for r in hours] == ["uploads/Shop/hours.md#0", "uploads/Shop/hours.md#1"]
    assert "eight" in hours[0].text  # B's, the newer set; A's is gone
    assert store.search("Shop", "when does the bakery open", limit=1)[0].record.id == "uploads/Shop/hours.md#0"
    assert store.get("Shop", "hand").text == "saved by hand"
    before = store.metadata("Shop")
    assert reopen().metadata("Shop") == before  # idempotent

    store = reopen()
    again = tmp_path / "c" / "uploads" / "Shop" / "hours.md"  # uploaded again, through a third server
    again.parent.mkdir(parents=True)
    again.write_text("# Opening hours\n\nFrom March the Lyon bakery opens at six.\n")
    report = ingest(store, "Shop", [again], source_of=lambda path: upload_source("Shop", path.name))
    assert (report.added, report.chunks) == (1, 1)
    hours = store.list("Shop", limit=None, where={"source": "uploads/Shop/hours.md"})
    assert [r.text for r in hours] == ["# Opening hours\n\nFrom March the Lyon bakery opens at six."]  # replaced
    assert len(store.metadata("Shop")) == 1 + 1 + 1


def test_dropping_a_collection_deletes_its_uploads(reopen: Callable[[], Any], request: pytest.FixtureRequest) -> None:
    store = reopen()
    store.save("Shop", "kept", id="k")
    store.save("Other", "kept", id="k")
    for name in ("Shop", "Other"):
        (store.path / "uploads" / name).mkdir(parents=True)
        (store.path / "uploads" / name / "hours.md").write_text(HOURS)
    url = getattr(store, "database_url", None)
    if url is not None:
        with psycopg.connect(url, autocommit=True) as conn:
            for name in ("Shop", "Other"):
                conn.execute(
                    "INSERT INTO memory_uploads (collection, name, size, content, uploaded_at) "
                    "VALUES (%s, %s, 1, %s, 0)",
                    (name, "hours.md", b"x"),
                )
    store.drop("Shop")
    assert not (store.path / "uploads" / "Shop").exists() and (store.path / "uploads" / "Other" / "hours.md").exists()
    if url is not None:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute("SELECT collection FROM memory_uploads").fetchall()
        assert rows == [("Other",)]
