"""``kernel-app memory repair``: salvage a damaged database, then rebuild every index from the records.

A database that fails ``PRAGMA integrity_check`` (or is not a database at all) is read row range by
row range, halving any range that errors down to single rows, so every readable record is copied
into a fresh database; the damaged file (with its ``-wal``) is kept beside it as
``memory.sqlite3.corrupt-<timestamp>``. Run it while no other process uses the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memories.db import DB_NAME, Database
from memories.embedders import Embedder
from memories.errors import StoreCorruptError
from memories.files import fsync_directory, remove_stale_temps
from memories.index import IndexSettings, remove_index_files

RANGE = 1_000  # rids read per query while salvaging
MAX_FAILED_READS = 20_000
SIDE_FILES = ("", "-wal", "-shm")
RECORD_COLUMNS = "rid, collection, id, text, description, metadata, embedding, created_at, updated_at"


@dataclass
class RepairReport:
    database: Path
    integrity: str = "ok"  # what was wrong with the database, or "ok"
    moved_aside: Path | None = None  # where the damaged file went (None: it was fine)
    recovered_records: int = 0  # records copied out of a damaged database
    unreadable_ranges: list[tuple[int, int]] = field(default_factory=list)  # rid ranges lost
    rebuilt: list[str] = field(default_factory=list)  # collections whose index was rebuilt
    damaged_vectors: int = 0  # records whose stored vector has the wrong size (not searchable)
    removed_temp_files: int = 0

    def __str__(self) -> str:
        lines = [f"{self.database}: {'database ok' if self.moved_aside is None else 'database was damaged'}"]
        if self.moved_aside is not None:
            lines.append(f"  problem: {self.integrity}")
            lines.append(f"  recovered {self.recovered_records} record(s); damaged file kept as {self.moved_aside}")
            if self.unreadable_ranges:
                spans = ", ".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in self.unreadable_ranges[:10])
                lines.append(f"  unreadable record ranges (internal ids): {spans}")
        lines.append(f"  rebuilt {len(self.rebuilt)} index(es): {', '.join(self.rebuilt) or '-'}")
        if self.damaged_vectors:
            lines.append(
                f"  {self.damaged_vectors} record(s) have a damaged vector and are not searchable: "
                "run `kernel-app memory reembed COLLECTION`"
            )
        return "\n".join(lines)


def repair_store(
    path: Path | str, embedder: Embedder | None = None, index_settings: IndexSettings | None = None
) -> RepairReport:
    """Salvage the database if it is damaged, then rebuild every collection's index from the records."""
    from memories.store import MemoryStore

    directory = Path(path).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    db_path = directory / DB_NAME
    report = RepairReport(database=db_path)
    problem = database_problem(db_path)
    if problem is not None:
        report.integrity = problem
        salvage(db_path, report)
    store = MemoryStore(directory, embedder, index_settings=index_settings)
    try:
        report.removed_temp_files = remove_stale_temps(store.index_dir)
        for info in store.collections():
            remove_index_files(store.index_dir, info.name)
            store.rebuild_index(info.name)
            report.rebuilt.append(info.name)
            with store.db.read() as conn:
                report.damaged_vectors += conn.execute(
                    "SELECT count(*) FROM records WHERE collection = ? AND length(embedding) != ?",
                    (info.name, info.dimensions * 4),
                ).fetchone()[0]
    finally:
        store.close()
    return report


def database_problem(db_path: Path) -> str | None:
    """None if the database opens as ours and passes ``PRAGMA integrity_check``; else what is wrong."""
    if not db_path.exists():
        return None
    try:
        db = Database(db_path)
    except StoreCorruptError as error:
        return error.problem
    try:
        rows = db.conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as error:
        return f"integrity check failed: {error}"
    finally:
        db.close()
    if rows != [("ok",)]:
        return "integrity check: " + "; ".join(str(row[0]) for row in rows[:3])
    return None


def salvage(db_path: Path, report: RepairReport) -> None:
    """Copy every readable row into a new database and swap it in; the old one is kept aside."""
    fresh_path = db_path.with_name(db_path.name + ".salvage")
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{fresh_path}{suffix}")
    fresh = Database(fresh_path)
    old = sqlite3.connect(db_path, isolation_level=None)
    try:
        collections = _read_collections(old)
        with fresh.write() as conn:
            seen = _copy_records(old, conn, report)
            for name, dimensions in seen.items():
                inferred = (name, uuid.uuid4().hex, "unknown (recovered)", dimensions, time.time(), 0)
                row = collections.get(name) or inferred
                conn.execute(
                    "INSERT OR IGNORE INTO collections (name, uid, embedder, dimensions, created_at, version) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
            for row in collections.values():  # empty collections too
                conn.execute("INSERT OR IGNORE INTO collections VALUES (?, ?, ?, ?, ?, ?)", row)
        fresh.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        old.close()
        fresh.close()
    aside = db_path.with_name(f"{db_path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in SIDE_FILES:
        if os.path.exists(f"{db_path}{suffix}"):
            os.replace(f"{db_path}{suffix}", f"{aside}{suffix}")
    for suffix in SIDE_FILES:
        if os.path.exists(f"{fresh_path}{suffix}"):
            os.replace(f"{fresh_path}{suffix}", f"{db_path}{suffix}")
    fsync_directory(db_path.parent)
    report.moved_aside = aside


def _read_collections(old: sqlite3.Connection) -> dict[str, tuple[Any, ...]]:
    try:
        rows = old.execute("SELECT name, uid, embedder, dimensions, created_at, version FROM collections").fetchall()
    except sqlite3.DatabaseError:
        return {}
    return {row[0]: row for row in rows if isinstance(row[0], str) and isinstance(row[3], int)}


def _max_rid(old: sqlite3.Connection) -> int:
    """The highest rid any surviving structure remembers (the AUTOINCREMENT counter, the indexes)."""
    found = 0
    for query in (
        "SELECT seq FROM sqlite_sequence WHERE name = 'records'",
        "SELECT max(rid) FROM records",
        "SELECT max(rid) FROM records INDEXED BY records_by_collection",
    ):
        try:
            row = old.execute(query).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row and isinstance(row[0], int):
            found = max(found, row[0])
    return found or 1 << 24  # nothing readable says: probe a generous range


def _indexed_rids(old: sqlite3.Connection) -> set[int]:
    """Rids the indexes list (as far as they read): rows that should exist."""
    rids: set[int] = set()
    for index in ("records_by_collection", "sqlite_autoindex_records_1"):
        try:
            cursor = old.execute(f"SELECT rid FROM records INDEXED BY {index}")
            while rows := cursor.fetchmany(10_000):
                rids.update(row[0] for row in rows if isinstance(row[0], int))
        except sqlite3.DatabaseError:
            continue
    return rids


def _copy_records(old: sqlite3.Connection, new: sqlite3.Connection, report: RepairReport) -> dict[str, int]:
    """Copy readable records (keeping their rids); returns each collection's vector dimension.

    Rows are fetched by rid (``rid IN (...)``: one b-tree seek each) rather than by scanning: a scan
    that meets a damaged page can stop early without an error, a seek reaches every intact page.
    """
    dimensions: dict[str, Counter[int]] = {}
    bad: list[tuple[int, int]] = []
    copied: set[int] = set()
    failures = 0
    try:
        old.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        return {}  # not a database at all: nothing to read

    def read(rids: list[int]) -> None:
        nonlocal failures
        try:
            rows = old.execute(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE rid IN (SELECT value FROM json_each(?))",
                (json.dumps(rids),),
            ).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return
            rows = None
        except sqlite3.DatabaseError:
            rows = None
        if rows is None:
            failures += 1
            if len(rids) == 1 or failures > MAX_FAILED_READS:  # give the range up rather than probe forever
                bad.append((rids[0], rids[-1]))
            else:
                read(rids[: len(rids) // 2])
                read(rids[len(rids) // 2 :])
            return
        good = [clean for clean in map(_clean_row, rows) if clean is not None]
        new.executemany(f"INSERT OR IGNORE INTO records ({RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", good)
        for row in good:
            copied.add(row[0])
            dimensions.setdefault(row[1], Counter())[len(row[6]) // 4] += 1

    top = _max_rid(old)
    for start in range(1, top + 1, RANGE):
        read(list(range(start, min(top, start + RANGE - 1) + 1)))
    report.recovered_records = len(copied)
    lost = _indexed_rids(old) - copied  # listed by an index, yet unreadable or garbled
    report.unreadable_ranges = _ranges(bad + [(rid, rid) for rid in lost])
    return {name: counts.most_common(1)[0][0] for name, counts in dimensions.items()}


def _clean_row(row: tuple[Any, ...]) -> tuple[Any, ...] | None:
    rid, collection, record_id, text, description, metadata, embedding, created, updated = row
    if not (isinstance(rid, int) and isinstance(collection, str) and isinstance(record_id, str)):
        return None
    if not isinstance(text, str) or not isinstance(embedding, bytes):
        return None
    try:
        metadata = metadata if isinstance(json.loads(metadata), dict) else "{}"
    except (TypeError, ValueError):
        metadata = "{}"
    now = time.time()
    created = created if isinstance(created, int | float) else now
    updated = updated if isinstance(updated, int | float) else created
    description = description if isinstance(description, str) else ""
    return (rid, collection, record_id, text, description, metadata, embedding, created, updated)


def _ranges(values: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for lo, hi in sorted(set(values)):
        if spans and spans[-1][1] >= lo - 1:
            spans[-1] = (spans[-1][0], max(hi, spans[-1][1]))
        else:
            spans.append((lo, hi))
    return spans
