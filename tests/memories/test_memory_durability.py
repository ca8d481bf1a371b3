"""Durability: other processes, concurrent writers, kill -9 at random moments, damaged database files."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memories import HashingEmbedder, MemoryStore, StoreCorruptError, repair_store
from memories.repair import database_problem
from tests.support.cli import cli_env


def python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=cli_env(), timeout=timeout, check=True
    )


def integrity(path: Path) -> str:
    with sqlite3.connect(path / "memory.sqlite3") as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


WRITE = """
import sys
from memories import HashingEmbedder, MemoryStore
with MemoryStore(sys.argv[1], HashingEmbedder(64)) as store:
    store.save_many("menu", [
        {"id": "margherita", "text": "margherita pizza with tomato, mozzarella and basil", "metadata": {"price": 9.5}},
        {"id": "calzone", "text": "folded calzone stuffed with ham and ricotta", "metadata": {"price": 12}},
        {"id": "tiramisu", "text": "tiramisu dessert with espresso and mascarpone", "metadata": {"price": 6}},
    ])
"""

READ = """
import json, sys
from memories import HashingEmbedder, MemoryStore
with MemoryStore(sys.argv[1], HashingEmbedder(64)) as store:
    hits = store.search("menu", sys.argv[2], limit=2, where={"price": {"gte": 8}})
    print(json.dumps([[h.record.id, h.record.metadata["price"]] for h in hits]))
"""


@pytest.mark.e2e
def test_records_persist_across_processes(tmp_path: Path) -> None:
    python(WRITE, str(tmp_path / "mem"))
    out = python(READ, str(tmp_path / "mem"), "pizza with tomato and basil").stdout
    assert json.loads(out) == [["margherita", 9.5], ["calzone", 12]]
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        assert store.count("menu") == 3


WRITER = """
import sys
from memories import HashingEmbedder, MemoryStore
path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with MemoryStore(path, HashingEmbedder(64), hnsw_threshold=120) as store:
    for i in range(0, count, 10):
        batch = [{"id": f"{name}-{i + j}", "text": f"{name} wrote record {i + j}"} for j in range(10)]
        store.save_many("shared", batch)
        store.save("shared", f"{name} single save {i}", id=f"{name}-single-{i}")
        store.search("shared", f"{name} wrote record {i}", limit=3)
print("done", flush=True)
"""


@pytest.mark.e2e
def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path, count = tmp_path / "mem", 150  # the store does not exist yet: creation races too
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        for name in ("alpha", "beta")
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert out.strip() == "done"
    assert integrity(path) == "ok"
    with MemoryStore(path, HashingEmbedder(64)) as store:
        expected = {f"{n}-{i}" for n in ("alpha", "beta") for i in range(count)}
        expected |= {f"{n}-single-{i}" for n in ("alpha", "beta") for i in range(0, count, 10)}
        assert store.count("shared") == len(expected)
        assert {r.id for r in store.list("shared", limit=None)} == expected
        assert store.search("shared", "beta wrote record 149", limit=1)[0].record.id == "beta-149"


CRASHER = """
import sys
from memories import HashingEmbedder, MemoryStore
from memories.index import IndexSettings
path, trial = sys.argv[1], sys.argv[2]
# persist_every=1: the index file is rewritten on every search, so kills land in index writes too.
settings = IndexSettings(hnsw_threshold=150, persist_every=1)
store = MemoryStore(path, HashingEmbedder(128), index_settings=settings)
words = "oven dough cheese basil flour rent staff bike menu lunch wine salad tip cash".split()
print("ready", flush=True)
i = 0
while True:
    batch = [
        {"id": f"{trial}-{n}", "text": f"trial {trial} record {n} " + " ".join(words[(n * k) % 14] for k in (3, 5, 7))}
        for n in range(i, i + 20)
    ]
    store.save_many("crash", batch)
    sys.stdout.write("".join(item["id"] + "\\n" for item in batch))  # acknowledged: save_many returned
    sys.stdout.flush()
    store.save("crash", f"trial {trial} single {i}", id=f"{trial}-single-{i}")
    print(f"{trial}-single-{i}", flush=True)
    store.search("crash", f"trial {trial} record {i}", limit=3)
    i += 20
"""


@pytest.mark.e2e
def test_kill_9_at_random_moments_loses_no_acknowledged_save(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    rng = random.Random(20240601)
    acknowledged: list[str] = []
    for trial in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", CRASHER, str(path), str(trial)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        lines = out.decode().split("\n")[:-1]  # a line cut by the kill (no newline) was not acknowledged
        assert lines, "the child saved nothing before it was killed: sleep longer"
        acknowledged += lines

        with MemoryStore(path, HashingEmbedder(128), hnsw_threshold=150) as store:  # opens after every crash
            present = {r.id for r in store.get_many("crash", acknowledged)}
            assert set(acknowledged) - present == set(), f"trial {trial}: acknowledged saves lost"
            last = lines[-1]
            hits = store.search("crash", store.get("crash", last).text, limit=3)
            assert last in [h.record.id for h in hits]
            index = store.stats()["collections"][0]["index"]  # the index holds exactly the records
            assert index["vectors"] - index["deleted_pending_compaction"] == store.count("crash")
    assert integrity(path) == "ok"
    assert len(acknowledged) >= 100


def test_garbage_database_file_is_a_clear_error_and_repair_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    path.mkdir()
    (path / "memory.sqlite3").write_bytes(os.urandom(8192))
    with pytest.raises(StoreCorruptError) as caught:
        MemoryStore(path, HashingEmbedder(64))
    message = str(caught.value)
    assert str(path / "memory.sqlite3") in message and "kernel-app memory repair" in message
    report = repair_store(path, HashingEmbedder(64))
    assert report.moved_aside is not None and report.moved_aside.exists()
    assert report.moved_aside.name.startswith("memory.sqlite3.corrupt-")
    assert report.recovered_records == 0 and "damaged" in str(report)
    with MemoryStore(path, HashingEmbedder(64)) as store:
        store.save("notes", "a new beginning")
        assert store.count("notes") == 1


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    path.mkdir()
    with sqlite3.connect(path / "memory.sqlite3") as conn:
        conn.execute("CREATE TABLE invoices (number INTEGER, amount REAL)")
    with pytest.raises(StoreCorruptError, match="not a Kernel App memory store"):
        MemoryStore(path, HashingEmbedder(64))


def test_damaged_page_is_salvaged_by_repair(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    texts = {f"rec-{i:03d}": f"record {i:03d} marker-{i:03d} " + "about the pizza shop " * 20 for i in range(400)}
    with MemoryStore(path, HashingEmbedder(64)) as store:
        store.save_many("notes", [{"id": k, "text": v} for k, v in texts.items()])
        store.save("empty-later", "kept collection")
    db = path / "memory.sqlite3"
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0  # checkpointed on close
    data = bytearray(db.read_bytes())
    page_size = 4096
    page = data.find(b"marker-200") // page_size
    data[page * page_size + 8 : (page + 1) * page_size] = os.urandom(page_size - 8)  # a destroyed table page
    db.write_bytes(bytes(data))

    assert database_problem(db) is not None
    with pytest.raises(StoreCorruptError, match="kernel-app memory repair"):  # noqa: SIM117
        with MemoryStore(path, HashingEmbedder(64)) as store:
            store.list("notes", limit=None)

    report = repair_store(path, HashingEmbedder(64))
    assert report.moved_aside is not None and report.moved_aside.exists()
    assert 350 <= report.recovered_records < 401 and report.unreadable_ranges
    assert sorted(report.rebuilt) == ["empty-later", "notes"]
    assert integrity(path) == "ok"
    with MemoryStore(path, HashingEmbedder(64)) as store:
        records = {r.id: r.text for r in store.list("notes", limit=None)}
        assert "rec-200" not in records and len(records) == report.recovered_records - 1
        assert all(texts[k] == v for k, v in records.items())  # what came back is intact
        assert store.search("notes", texts["rec-399"], limit=1)[0].record.id == "rec-399"
        store.save("notes", "written after the repair", id="after")
        assert store.get("notes", "after") is not None


def test_repair_of_a_healthy_store_rebuilds_indexes(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        store.save_many("notes", ["one fine pizza", "two cold beers"])
        store.search("notes", "pizza")
        (store.index_dir / "notes.faiss.tmp-stale").write_bytes(b"left by a killed process")
        report = store.repair()
        assert report.moved_aside is None and report.rebuilt == ["notes"] and report.removed_temp_files == 1
        assert "database ok" in str(report)
        assert store.search("notes", "pizza", limit=1)[0].record.text == "one fine pizza"


def test_a_record_with_a_damaged_vector_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    with MemoryStore(path, HashingEmbedder(64)) as store:
        store.save_many("notes", [{"id": i, "text": f"pizza note {i}", "metadata": {"k": 1}} for i in "abcde"])
    with sqlite3.connect(path / "memory.sqlite3") as conn:
        conn.execute("UPDATE records SET embedding = x'00ff' WHERE id = 'b'")
    for file in (path / "index").glob("notes.*"):
        file.unlink()
    with MemoryStore(path, HashingEmbedder(64)) as store:
        assert sorted(h.record.id for h in store.search("notes", "pizza note b", limit=10)) == list("acde")
        assert sorted(h.record.id for h in store.search("notes", "pizza note", limit=10, where={"k": 1})) == list(
            "acde"
        )
        assert store.get("notes", "b").text == "pizza note b"  # the text is still there
        report = store.repair()
        assert report.damaged_vectors == 1 and "reembed" in str(report)
        store.reembed("notes")
        assert store.search("notes", "pizza note b", limit=1)[0].record.id == "b"


INGESTER = """
import sys
from memories import HashingEmbedder, MemoryStore
from memories.ingest import ingest

def acknowledge(path, done, total):
    print(path.name, flush=True)  # printed only after the file's chunks were committed

with MemoryStore(sys.argv[1], HashingEmbedder(64)) as store:
    print("ready", flush=True)
    ingest(store, "notes", [sys.argv[2]], chunk_size=200, overlap=20, progress=acknowledge)
"""


FILES = 1000  # ~2 s of ingest here: a kill 0-0.3 s after the first file lands mid-way on a machine several times faster


def _write_notes(docs: Path, version: int) -> None:
    for n in range(FILES):
        sections = "\n\n".join(
            f"## Part {p}\n\n" + f"Note {n} v{version} part {p} is about dough. " * 6 for p in range(3)
        )
        (docs / f"note-{n:04d}.md").write_text(f"# Note {n}\n\n{sections}\n")


@pytest.mark.e2e
def test_kill_9_mid_ingest_loses_no_acknowledged_file_and_leaves_no_half_file(tmp_path: Path) -> None:
    """Each trial rewrites every file, so each ingest replaces chunks, and is killed part-way."""
    docs = tmp_path / "docs"
    docs.mkdir()
    path, rng = tmp_path / "mem", random.Random(7)
    acknowledged_in_all = 0
    for trial in range(3):
        _write_notes(docs, trial)
        child = subprocess.Popen(
            [sys.executable, "-c", INGESTER, str(path), str(docs)], stdout=subprocess.PIPE, env=cli_env()
        )
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        # Kill after the first acknowledgement, not after a fixed time: on a loaded machine a fixed
        # sleep can land before any file is done, which tests nothing.
        first = child.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        acknowledged = set((first + out).decode().split("\n")[:-1])
        assert len(acknowledged) < FILES, f"trial {trial}: the kill should land mid-ingest: adjust the sleep"
        acknowledged_in_all += len(acknowledged)
        with MemoryStore(path, HashingEmbedder(64)) as store:
            chunks: dict[str, list[str]] = {}
            for record in store.list("notes", limit=100_000):
                chunks.setdefault(Path(str(record.metadata["source"])).name, []).append(record.text)
        for name, texts in chunks.items():
            versions = {f"v{v} " for v in range(trial + 1) if any(f"v{v} " in t for t in texts)}
            assert len(versions) == 1 and len(texts) == 6, f"{name}: a half-replaced file ({versions}, {len(texts)})"
            if name in acknowledged:
                assert versions == {f"v{trial} "}, f"trial {trial}: acknowledged {name} lost its new content"
    assert acknowledged_in_all > 0, "no kill landed after a file was acknowledged: adjust the sleep"
    with MemoryStore(path, HashingEmbedder(64)) as store:  # the next run finishes the job
        from memories.ingest import ingest

        report = ingest(store, "notes", [docs], chunk_size=200, overlap=20)
        assert report.failed == [] and report.added + report.skipped_unchanged == FILES
        assert store.count("notes") == FILES * 6
    assert integrity(path) == "ok"


def test_a_store_being_created_by_another_process_is_waited_for(tmp_path: Path, monkeypatch) -> None:
    """SQLite can answer "locked" at once (no busy wait) while another process switches a new file to WAL."""
    from memories import db

    real_open, calls = db.Database._open, []

    def locked() -> sqlite3.OperationalError:
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = sqlite3.SQLITE_BUSY
        return error

    def locked_twice(self, synchronous: str) -> None:
        calls.append(synchronous)
        if len(calls) <= 2:
            raise locked()
        real_open(self, synchronous)

    def always_locked(self, synchronous: str) -> None:
        raise locked()

    monkeypatch.setattr(db.Database, "_open", locked_twice)
    with MemoryStore(tmp_path / "mem", HashingEmbedder(64)) as store:
        store.save("c", "opened after two refusals", id="a")
    assert len(calls) == 3

    monkeypatch.setattr(db.Database, "_open", always_locked)  # not forever: the busy timeout still holds
    with pytest.raises(db.StoreBusyError, match="kept the store locked"):
        db.Database(tmp_path / "mem" / "memory.sqlite3", busy_timeout=0.2)


def test_a_store_created_between_two_reads_is_not_taken_for_a_foreign_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process finishes creating the store just after this one read "no mark" on the file."""
    from memories import db

    MemoryStore(tmp_path / "mem", HashingEmbedder(64)).close()  # the other process's work, done already
    real_connect = sqlite3.connect

    class FirstMarkReadsZero:  # the first PRAGMA application_id sees the file as it was a moment earlier
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn, self.first = conn, True

        def execute(self, sql: str, *args: object) -> object:
            if self.first and sql.strip() == "PRAGMA application_id":
                self.first = False
                return self.conn.execute("SELECT 0")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self.conn, name)

    monkeypatch.setattr(db.sqlite3, "connect", lambda *a, **k: FirstMarkReadsZero(real_connect(*a, **k)))
    db.Database(tmp_path / "mem" / "memory.sqlite3").close()  # opens; no StoreCorruptError
