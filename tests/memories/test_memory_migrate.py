"""Copying a memory store between backends (``kernel-app memory migrate``): local -> PostgreSQL -> local with
nothing lost, resumable, never touching the source."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from kernel_app.interfaces.cli.main import main
from memories import EmbedderMismatchError, HashingEmbedder, MemoryStore, PgMemoryStore
from memories.copy import copy_store
from tests.support import postgres as pg_support

pytestmark = pytest.mark.e2e  # a real PostgreSQL, and kernel-app subprocesses

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


def _fill(store: MemoryStore) -> None:
    store.save_many(
        "swot",
        [
            {
                "text": f"strength {i}",
                "id": f"s{i}",
                "description": "strengths",
                "metadata": {"rank": i, "ok": i % 2 == 0},
            }
            for i in range(120)
        ],
    )
    store.embedder = HashingEmbedder(16)  # a second collection from another embedder travels with its own
    store.save_many("notes", ["one note", "another note"])


def _snapshot(store: object, name: str) -> dict[str, tuple]:
    ids = sorted(store.metadata(name))  # type: ignore[attr-defined]
    return {
        r.id: (r.text, r.description, r.metadata, np.round(r.embedding, 6).tobytes())
        for r in store.get_many(name, ids, with_embedding=True)  # type: ignore[attr-defined]
    }


def test_local_to_postgres_and_back_loses_nothing_and_resumes(tmp_path: Path, postgres_url: str) -> None:
    with MemoryStore(tmp_path / "local", HashingEmbedder(32)) as local:
        _fill(local)
        before = {name: _snapshot(local, name) for name in ("swot", "notes")}
        with PgMemoryStore(postgres_url, HashingEmbedder(32)) as database:
            # An interrupted copy: some records are there already.
            copy_store(local, database, collections=["swot"], batch_size=50)
            database.delete("swot", [f"s{i}" for i in range(60, 120)])
            reports = copy_store(local, database, batch_size=50)
            assert [(r.name, r.copied, r.already_there) for r in reports] == [("notes", 2, 0), ("swot", 60, 60)]
            assert [(c.name, c.embedder, c.count) for c in database.collections()] == [
                ("notes", "hashing-16", 2),
                ("swot", "hashing-32", 120),
            ]
            assert {name: _snapshot(database, name) for name in ("swot", "notes")} == before
            database.embedder = HashingEmbedder(32)
            assert database.search("swot", "strength 7", limit=1)[0].record.id == "s7"
            with MemoryStore(tmp_path / "back", HashingEmbedder(32)) as back:
                copy_store(database, back)
                assert {name: _snapshot(back, name) for name in ("swot", "notes")} == before
        assert {name: _snapshot(local, name) for name in ("swot", "notes")} == before  # the source is untouched


def _times(store: object, name: str) -> dict[str, tuple[float, float]]:
    ids = sorted(store.metadata(name))  # type: ignore[attr-defined]
    return {
        r.id: (r.created_at.timestamp(), r.updated_at.timestamp())
        for r in store.get_many(name, ids)  # type: ignore[attr-defined]
    }


def _close(ours: dict[str, tuple[float, float]], theirs: dict[str, tuple[float, float]]) -> bool:
    """The same ids and times, within a millisecond (SQLite keeps float seconds, PostgreSQL microseconds)."""
    return ours.keys() == theirs.keys() and all(
        abs(a - b) < 1e-3 for rid in ours for a, b in zip(ours[rid], theirs[rid], strict=True)
    )


@pytest.mark.parametrize("batch_size", [50, 600])  # 600: PostgreSQL's bulk path (COPY) for the whole batch
def test_the_copy_keeps_created_and_updated_times_both_ways(tmp_path: Path, postgres_url: str, batch_size: int) -> None:
    with MemoryStore(tmp_path / "local", HashingEmbedder(32)) as local:
        local.save_many("swot", [{"text": f"strength {i}", "id": f"s{i}"} for i in range(550)])
        time.sleep(0.05)
        local.save("swot", "strength 7, revised", id="s7")  # updated later than created
        before = _times(local, "swot")
        assert before["s7"][1] - before["s7"][0] >= 0.05
        time.sleep(0.05)
        copied_after = time.time()
        with PgMemoryStore(postgres_url, HashingEmbedder(32)) as database:
            copy_store(local, database, batch_size=batch_size)
            assert _close(_times(database, "swot"), before)
            with MemoryStore(tmp_path / "back", HashingEmbedder(32)) as back:
                copy_store(database, back, batch_size=batch_size)
                assert _close(_times(back, "swot"), before)
    assert max(max(pair) for pair in before.values()) < copied_after  # the times are the source's, not the copy's


def test_a_collection_under_another_embedder_in_the_target_is_refused(tmp_path: Path, postgres_url: str) -> None:
    with (
        MemoryStore(tmp_path / "local", HashingEmbedder(32)) as local,
        PgMemoryStore(postgres_url, HashingEmbedder(8)) as database,
    ):
        local.save("kb", "hello")
        database.save("kb", "other")
        with pytest.raises(EmbedderMismatchError, match="collection 'kb'"):
            copy_store(local, database)
        assert database.count("kb") == 1


def test_the_cli_copies_the_configured_store(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KERNEL_APP_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("KERNEL_APP_DATABASE_URL", raising=False)
    with MemoryStore(tmp_path / "local", HashingEmbedder(32)) as local:
        local.save_many("swot", [{"text": f"t{i}", "id": f"r{i}"} for i in range(5)])
    main(["--memory-dir", str(tmp_path / "local"), "memory", "migrate", "--to", postgres_url])
    assert capsys.readouterr().out.strip() == (
        "swot: 5 record(s) copied, 0 already there; verified all ids and 5 sampled vector(s)"
    )
    with PgMemoryStore(postgres_url, HashingEmbedder(32)) as database:
        assert database.count("swot") == 5
    with pytest.raises(SystemExit) as exited:
        main(["--memory-dir", str(tmp_path / "local"), "memory", "migrate", "--to", str(tmp_path / "local")])
    assert exited.value.code == 2 and "names the store being copied" in capsys.readouterr().err
