"""The SQLite side of the store: schema, connection settings, transactions, error translation.

Durability: WAL journal with ``synchronous=FULL``. A ``save`` returns only after its COMMIT, and
with FULL the commit fsyncs the WAL first, so an acknowledged save survives kill -9 (which NORMAL
would already give: the WAL write is in the OS cache before COMMIT returns) and also a power cut
or kernel crash (which NORMAL would not). The price is one fsync per transaction, so bulk writes
go through ``save_many`` (one transaction per call).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from memories.errors import MemoryStoreError, StoreBusyError, StoreCorruptError

DB_NAME = "memory.sqlite3"
APPLICATION_ID = 0x4B414D53  # "KAMS": marks the file as a Kernel App memory store
SCHEMA_VERSION = 1


def default_store_dir() -> Path:
    """The per-user default: ``$XDG_DATA_HOME/kernel-app/memory`` (``~/.local/share/kernel-app/memory``).
    Here, not in ``memories.store``, so that finding the folder does not import numpy (chat's prompt)."""
    from kernel_app.base.paths import data_dir

    return data_dir()


SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    name        TEXT PRIMARY KEY,
    uid         TEXT NOT NULL,              -- changes when the vectors are rebuilt (re-embed)
    embedder    TEXT NOT NULL,
    dimensions  INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    version     INTEGER NOT NULL DEFAULT 0  -- bumped by every write: the index staleness check
);
CREATE TABLE IF NOT EXISTS records (
    -- An explicit INTEGER PRIMARY KEY: the FAISS ids. Unlike an implicit rowid it survives VACUUM,
    -- and AUTOINCREMENT never reuses one: so "rid > last indexed rid" finds every new row.
    rid         INTEGER PRIMARY KEY AUTOINCREMENT,
    collection  TEXT NOT NULL,
    id          TEXT NOT NULL,
    text        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata    TEXT NOT NULL DEFAULT '{}',
    embedding   BLOB NOT NULL,              -- float32, little-endian, L2-normalised
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    UNIQUE (collection, id)
);
-- (collection, rid) in rid order: "new rows since rid N" is a range seek, counts need no table.
CREATE INDEX IF NOT EXISTS records_by_collection ON records (collection);
"""

# SQLite's primary result codes. The sqlite3 module names them from Python 3.11 only (as it sets an error's
# sqlite_errorcode); on 3.10 the module attributes are missing, so they are spelled out here.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CORRUPT, SQLITE_NOTADB = 5, 6, 11, 26
CORRUPT_CODES = {SQLITE_CORRUPT, SQLITE_NOTADB}
BUSY_CODES = {SQLITE_BUSY, SQLITE_LOCKED}


def is_corruption(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in CORRUPT_CODES
    text = str(error).lower()
    return "malformed" in text or "not a database" in text


class Database:
    """One connection (autocommit mode, explicit transactions) shared by a store's threads."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", busy_timeout: float = 30.0) -> None:
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError("synchronous must be FULL, EXTRA or NORMAL")
        self.path = path
        self.busy_timeout = busy_timeout
        self.lock = threading.RLock()
        self._depth = 0
        self._writing = False
        self.conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            self._open_retrying(synchronous.upper())
        except BaseException:
            self.conn.close()
            raise

    def _open_retrying(self, synchronous: str) -> None:
        """``_open``, retried while another process holds the lock it needs, up to the busy timeout.

        Switching a new file to WAL needs an exclusive lock, and when another process is creating the
        same store at that moment SQLite answers "database is locked" at once instead of waiting (its
        busy handler is not used there, to avoid a deadlock). ``_open`` is idempotent, so try again.
        """
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.01
        while True:
            try:
                with self.translate():
                    self.conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                    self._open(synchronous)
                return
            except StoreBusyError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _open(self, synchronous: str) -> None:
        conn = self.conn
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]  # fails on a non-database
        if application_id == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            # Tables but no mark: someone else's database, unless another process created the store
            # (schema and mark commit together) between the two reads above. Nothing is changed in a
            # foreign file, not even its journal mode.
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            if application_id == 0:
                raise StoreCorruptError(self.path, "not a Kernel App memory store (a database of something else)")
        if application_id == 0:
            # Persistent; set outside a transaction. Switching needs an exclusive lock, so only switch when
            # another process has not already done it (two first opens at once otherwise fail "locked").
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            with self.write():
                if conn.execute("PRAGMA application_id").fetchone()[0] == 0:  # no other process won the race
                    # Statement by statement: executescript() would COMMIT the open transaction first.
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif application_id != APPLICATION_ID:
            raise StoreCorruptError(self.path, f"not a Kernel App memory store (application_id {application_id:#x})")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise MemoryStoreError(
                f"{self.path}: written by a newer Kernel App (schema {version}, this one reads {SCHEMA_VERSION}): "
                "upgrade kernel-app"
            )
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("SELECT count(*) FROM collections").fetchone()  # touches the schema pages

    @contextlib.contextmanager
    def translate(self) -> Iterator[None]:
        """sqlite3 errors → typed store errors (corruption, a lock held past the busy timeout)."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            if is_corruption(error):
                raise StoreCorruptError(self.path, f"the database is damaged ({error})") from error
            code = getattr(error, "sqlite_errorcode", 0) & 0xFF
            if code in BUSY_CODES:
                raise StoreBusyError(
                    f"{self.path}: another process kept the store locked for more than {self.busy_timeout:g} s: "
                    "try again when it is done"
                ) from error
            raise

    @contextlib.contextmanager
    def transaction(self, mode: str) -> Iterator[sqlite3.Connection]:
        """A read (``DEFERRED``: one consistent snapshot) or write (``IMMEDIATE``) transaction; nests."""
        with self.lock, self.translate():
            if self._depth:
                if mode == "IMMEDIATE" and not self._writing:
                    raise RuntimeError("a write transaction cannot start inside a read transaction")
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute(f"BEGIN {mode}")
            self._depth, self._writing = 1, mode == "IMMEDIATE"
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self.conn.execute("COMMIT")

    def read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self.transaction("DEFERRED")

    def write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self.transaction("IMMEDIATE")

    def close(self) -> None:
        with self.lock:
            self.conn.close()
