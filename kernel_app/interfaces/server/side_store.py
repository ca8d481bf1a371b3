"""An adapter's own SQLite file beside the conversation store (Teams' ``teams.sqlite3``, chat-copilot's
``copilot.sqlite3``), opened one way for all of them.

WAL and ``synchronous=FULL`` as in the conversation store, so what an adapter keeps about a conversation
survives a restart (and a kill) like the messages it points at. One connection per store, shared by the
event loop and worker threads under a lock (``check_same_thread=False``). :class:`DecisionStore` is such a
table of records waiting for a person's decision (Teams' plans and calls, chat-copilot's plan messages).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

MEMORY = ":memory:"


class Decision(Protocol):
    """What :class:`DecisionStore` reads of its records itself (their other fields are the adapter's)."""

    @property
    def id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def created_at(self) -> float: ...


R = TypeVar("R", bound=Decision)
# A TypeVar, not typing.Self: Self is new in Python 3.11, and we support 3.10.
S = TypeVar("S", bound="SideStore")


def connect(path: str) -> sqlite3.Connection:
    """Open ``path`` (its folder made if missing) in autocommit mode, durable as the conversation store."""
    if path != MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    if path != MEMORY:  # an in-memory database has no WAL
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class SideStore:
    """A subclass names its file (``DB_NAME``) and its tables (``SCHEMA``, run at open); several may share a file."""

    DB_NAME: ClassVar[str]
    SCHEMA: ClassVar[str]

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(self.SCHEMA)

    @classmethod
    def beside(cls: type[S], store_path: Path | str) -> S:
        """Next to the conversation store (in memory when the store is)."""
        if str(store_path) == MEMORY:
            return cls(MEMORY)
        return cls(Path(store_path).parent / cls.DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class DecisionStore(SideStore, Generic[R]):
    """Records that wait for a person's decision (a card's click, a plan message's Approve), one table each.

    A subclass declares its table (``TABLE``), its record (``RECORD``, a dataclass whose first field is
    ``id`` and which has ``state``, ``outcome`` and ``created_at``) and what a record found running at start
    says (``INTERRUPTED``, formatted with the record's fields); the columns, the schema and the conversions
    come from the record's fields: ``dict`` and ``list`` fields are JSON text, ``bool`` an integer.
    :meth:`decide` moves a record out of ``waiting`` in one conditional UPDATE, so two clicks (or two
    servers on one data directory) decide it once.

    States: ``waiting`` -> ``approved`` (running) -> ``done`` | ``failed``; ``waiting`` -> ``rejected`` |
    ``expired``; ``approved`` rows found at start are ``interrupted`` (the server stopped while they ran).
    """

    TABLE: ClassVar[str]
    RECORD: ClassVar[type[Any]]
    INTERRUPTED: ClassVar[str]
    COLUMN_NAMES: ClassVar[dict[str, str]] = {"group": "is_group"}  # field -> column, where the name is an SQL word
    KEEP_DECIDED: ClassVar[int] = 500  # decided records remembered (a late click shows their outcome)
    FORGET_WAITING: ClassVar[float] = 7 * 24 * 3600.0  # seconds: a waiting record long expired goes
    _COLUMNS: ClassVar[tuple[_Column, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "RECORD" in cls.__dict__:
            cls._COLUMNS = _columns(cls.RECORD, cls.COLUMN_NAMES)
            body = ", ".join(f"{c.name} {c.sql}" for c in cls._COLUMNS)
            cls.SCHEMA = f"CREATE TABLE IF NOT EXISTS {cls.TABLE} ({body}, updated_at REAL NOT NULL)"

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        with self._lock:
            self._add_new_columns()

    def _add_new_columns(self) -> None:
        """A file written before a field was added to the record gets its column, with the field's default
        (``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it was)."""
        present = {row[1] for row in self._conn.execute(f"PRAGMA table_info({self.TABLE})")}
        defaults = {f.name: f for f in dataclasses.fields(self.RECORD)}
        for column in self._COLUMNS:
            if column.name in present:
                continue
            item = defaults[column.field]
            if item.default is not dataclasses.MISSING:
                default = item.default
            elif item.default_factory is not dataclasses.MISSING:
                default = item.default_factory()
            else:
                raise TypeError(f"{self.TABLE}.{column.name}: a field added to a kept record needs a default")
            value = column.to_sql(default)
            if isinstance(value, str):  # an SQL string literal: single quotes, doubled inside
                literal = "'" + value.replace("'", "''") + "'"
            else:
                literal = "NULL" if value is None else repr(value)
            self._conn.execute(f"ALTER TABLE {self.TABLE} ADD COLUMN {column.name} {column.sql} DEFAULT {literal}")

    def add(self, record: R) -> None:
        names = ", ".join(c.name for c in self._COLUMNS)
        values = [c.to_sql(getattr(record, c.field)) for c in self._COLUMNS]
        with self._lock:
            self._conn.execute(
                f"INSERT INTO {self.TABLE} ({names}, updated_at) VALUES ({', '.join('?' * (len(values) + 1))})",
                (*values, time.time()),
            )
            self._prune()

    def get(self, record_id: str) -> R | None:
        rows = self._select("id = ?", (record_id,))
        return rows[0] if rows else None

    def decide(
        self,
        record_id: str,
        state: str,
        outcome: str,
        card_id: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> bool:
        """Move a waiting record to ``state``; False when it was no longer waiting (it was decided already).
        ``card_id`` (where the table has one) is kept when given; ``changes`` (other fields, e.g. a plan's
        edits) are written by the same conditional update, so only the decision that wins writes them."""
        card = ", card_id = COALESCE(?, card_id)" if "card_id" in self._fields() else ""
        settled = self._settled(changes or {})
        extra = "".join(f", {name} = ?" for name, _ in settled)
        parameters = (state, outcome, *((card_id,) if card else ()), *(value for _, value in settled))
        with self._lock:
            cursor = self._conn.execute(
                f"UPDATE {self.TABLE} SET state = ?, outcome = ?{card}{extra}, updated_at = ? "
                "WHERE id = ? AND state = 'waiting'",
                (*parameters, time.time(), record_id),
            )
        return cursor.rowcount == 1

    def _settled(self, changes: dict[str, Any]) -> list[tuple[str, Any]]:
        """``changes`` as (column, SQL value) pairs; the id, state and outcome are not changed this way."""
        columns = {c.field: c for c in self._COLUMNS}
        unknown = sorted(set(changes) - columns.keys() | ({"id", "state", "outcome"} & set(changes)))
        if unknown:
            raise ValueError(f"{self.TABLE}: cannot change {', '.join(unknown)} this way")
        return [(columns[name].name, columns[name].to_sql(value)) for name, value in changes.items()]

    def having(self, name: str, value: str) -> list[R]:
        """The records whose field ``name`` (a text field of the record) is ``value``, oldest first (e.g.
        a conversation's REST plans)."""
        if name not in self.text_fields():
            raise ValueError(f"{self.TABLE}: cannot look records up by {name}")
        column = next(c.name for c in self._COLUMNS if c.field == name)
        return sorted(self._select(f"{column} = ?", (value,)), key=lambda r: r.created_at)

    @classmethod
    def text_fields(cls) -> set[str]:
        """The record's text fields (``str`` or ``str | None``): what :meth:`having` looks records up by."""
        return {c.field for c in cls._COLUMNS if not c.kind and c.sql.startswith("TEXT")}

    def update_waiting(self, record_id: str, changes: dict[str, Any]) -> bool:
        """Change other fields of a record still waiting (a waiting turn's heartbeat); False when it was
        decided meanwhile (then nothing changes)."""
        settled = self._settled(changes)
        assignments = ", ".join(f"{name} = ?" for name, _ in settled)
        with self._lock:
            cursor = self._conn.execute(
                f"UPDATE {self.TABLE} SET {assignments} WHERE id = ? AND state = 'waiting'",
                (*(value for _, value in settled), record_id),
            )
        return cursor.rowcount == 1

    def update_running(self, record_id: str, changes: dict[str, Any]) -> bool:
        """Change other fields of an approved record while it runs (a plan's steps so far); False when it
        is no longer running (then nothing changes: its outcome is written)."""
        settled = self._settled(changes)
        assignments = ", ".join(f"{name} = ?" for name, _ in settled)
        with self._lock:
            cursor = self._conn.execute(
                f"UPDATE {self.TABLE} SET {assignments}, updated_at = ? WHERE id = ? AND state = 'approved'",
                (*(value for _, value in settled), time.time(), record_id),
            )
        return cursor.rowcount == 1

    def claim(self, record_id: str, runner: str) -> bool:
        """Take an approved record to run it: True for the one caller (of any server) that took it first.

        For records that a waiting turn on one server and a click on another could both run (Teams'
        calls): the record has a ``taken_by`` field, empty until this one conditional UPDATE sets it."""
        if "taken_by" not in self._fields():
            raise TypeError(f"{self.TABLE}: claim needs a taken_by field in {self.RECORD.__name__}")
        with self._lock:
            cursor = self._conn.execute(
                f"UPDATE {self.TABLE} SET taken_by = ?, updated_at = ? "
                "WHERE id = ? AND state = 'approved' AND taken_by = ''",
                (runner, time.time(), record_id),
            )
        return cursor.rowcount == 1

    def expire_if_late(self, record: Any, timeout: float, outcome: str, card_id: str | None = None) -> bool:
        """A waiting record older than ``timeout`` seconds is ``expired`` (nothing runs); True when it was."""
        if record.state != "waiting" or time.time() - record.created_at <= timeout:
            return False
        self.decide(record.id, "expired", outcome, card_id)
        return True

    def finish(self, record_id: str, state: str, outcome: str, changes: dict[str, Any] | None = None) -> None:
        """What became of an approved record: ``done`` or ``failed`` (once: a later failure, e.g. of the
        message after it, does not turn ``done`` into ``failed``). ``changes``: other fields of the record
        that running it settled (a REST plan's result and usage), written in the same UPDATE."""
        columns = {c.field: c for c in self._COLUMNS}
        unknown = sorted(set(changes or {}) - columns.keys() - {"id", "state", "outcome"})
        if unknown or {"id", "state", "outcome"} & set(changes or {}):
            raise ValueError(f"{self.TABLE}: finish cannot change {', '.join(unknown) or 'id, state or outcome'}")
        settled = [(columns[name].name, columns[name].to_sql(value)) for name, value in (changes or {}).items()]
        assignments = "".join(f", {name} = ?" for name, _ in settled)
        with self._lock:
            self._conn.execute(
                f"UPDATE {self.TABLE} SET state = ?, outcome = ?{assignments}, updated_at = ? "
                "WHERE id = ? AND state = 'approved'",
                (state, outcome, *(value for _, value in settled), time.time(), record_id),
            )

    def interrupt_running(self) -> int:
        """At start: what was running when the server stopped may not have finished; say so when asked."""
        running = self._select("state = 'approved'", ())
        with self._lock:
            for record in running:
                self._conn.execute(
                    f"UPDATE {self.TABLE} SET state = 'interrupted', outcome = ?, updated_at = ? WHERE id = ?",
                    (self.INTERRUPTED.format_map(vars(record)), time.time(), record.id),
                )
        return len(running)

    def _fields(self) -> set[str]:
        return {c.field for c in self._COLUMNS}

    def _select(self, where: str, parameters: tuple[Any, ...]) -> list[R]:
        names = ", ".join(c.name for c in self._COLUMNS)
        with self._lock:
            rows = self._conn.execute(f"SELECT {names} FROM {self.TABLE} WHERE {where}", parameters).fetchall()
        columns = self._COLUMNS
        return [self.RECORD(**{c.field: c.from_sql(v) for c, v in zip(columns, row, strict=True)}) for row in rows]

    def _prune(self) -> None:
        table = self.TABLE
        self._conn.execute(
            f"DELETE FROM {table} WHERE state != 'waiting' AND id NOT IN (SELECT id FROM {table} "
            "WHERE state != 'waiting' ORDER BY updated_at DESC LIMIT ?)",
            (self.KEEP_DECIDED,),
        )
        self._conn.execute(
            f"DELETE FROM {table} WHERE state = 'waiting' AND created_at < ?", (time.time() - self.FORGET_WAITING,)
        )


@dataclass(frozen=True)
class _Column:
    field: str
    name: str
    sql: str  # its type and constraint in the schema
    kind: str  # "json", "bool" or "" (as it is)

    def to_sql(self, value: Any) -> Any:
        if self.kind == "json":
            return json.dumps(value, ensure_ascii=False, default=str)
        return int(value) if self.kind == "bool" else value

    def from_sql(self, value: Any) -> Any:
        if self.kind == "json":
            return json.loads(value)
        return bool(value) if self.kind == "bool" else value


_SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}


def _columns(record: type[Any], renamed: dict[str, str]) -> tuple[_Column, ...]:
    """A record's columns from its dataclass fields and their types (the first field, ``id``, is the key)."""
    hints = typing.get_type_hints(record)
    columns = []
    for number, item in enumerate(dataclasses.fields(record)):
        hint = hints[item.name]
        arguments = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(arguments) < len(typing.get_args(hint))
        base = typing.get_origin(hint) or hint
        if optional and len(arguments) == 1:  # X | None
            base = typing.get_origin(arguments[0]) or arguments[0]
        if base in (dict, list):
            kind, sql = "json", "TEXT"
        elif base in _SQL_TYPES:
            kind, sql = ("bool" if base is bool else ""), _SQL_TYPES[base]
        else:
            raise TypeError(f"{record.__name__}.{item.name}: a side store keeps str, int, float, bool, dict or list")
        constraint = " PRIMARY KEY" if number == 0 else ("" if optional else " NOT NULL")
        columns.append(_Column(item.name, renamed.get(item.name, item.name), sql + constraint, kind))
    return tuple(columns)
