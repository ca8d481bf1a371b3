"""Function calls of free text waiting for their card's click, kept in ``teams.sqlite3`` as plans are.

One row per card: the call the model asked for (function, arguments, the model's call id, its effect),
the conversation it belongs to (the Teams conversation, the engine conversation, the message that asked,
to continue from), who asked, and its state. While the server runs, the turn that asked waits for the
click in memory; after a restart that turn is gone, and the row is what a click finds
(:mod:`.calls`). :meth:`CallStore.decide` moves a call out of ``waiting`` in one conditional UPDATE, so
two clicks (or two servers on one data directory) decide it once.

States: ``waiting`` -> ``approved`` (running) -> ``done`` | ``failed``; ``waiting`` -> ``rejected`` |
``expired``; ``approved`` rows found at start are ``interrupted`` (the server stopped while they ran).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from kernel_app.server.side_store import SideStore
from kernel_app.server.teams.links import DB_NAME

KEEP_DECIDED = 500  # decided calls remembered (a late click shows their outcome)
FORGET_WAITING = 7 * 24 * 3600.0  # seconds: a waiting call long expired goes (a click then finds none)
INTERRUPTED = "The server restarted while {function} ran, so it may not have finished: ask again."


@dataclass
class CallRecord:
    id: str  # the approval id on the card
    teams_id: str
    conversation_id: str
    owner: str
    owner_name: str
    group: bool
    function: str  # Plugin.Function
    arguments: dict[str, Any]
    call_id: str  # the model's id for the call
    effect: str  # kernel_app.effects.Effect value
    said: str  # the message whose turn asked for the call
    activity: dict[str, Any]  # that message, to continue the conversation from
    state: str = "waiting"
    outcome: str = ""
    card_id: str | None = None
    created_at: float = field(default_factory=time.time)


_COLUMNS = (
    "id, teams_id, conversation_id, owner, owner_name, is_group, function, arguments, call_id, effect, said, "
    "activity, state, outcome, card_id, created_at"
)


class CallStore(SideStore):
    """The ``calls`` table of ``teams.sqlite3``, beside the links and the plans."""

    DB_NAME = DB_NAME
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS calls (id TEXT PRIMARY KEY, teams_id TEXT NOT NULL, "
        "conversation_id TEXT NOT NULL, owner TEXT NOT NULL, owner_name TEXT NOT NULL, is_group INTEGER NOT NULL, "
        "function TEXT NOT NULL, arguments TEXT NOT NULL, call_id TEXT NOT NULL, effect TEXT NOT NULL, "
        "said TEXT NOT NULL, activity TEXT NOT NULL, state TEXT NOT NULL, outcome TEXT NOT NULL, card_id TEXT, "
        "created_at REAL NOT NULL, updated_at REAL NOT NULL)"
    )

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._conn.execute(
                f"INSERT INTO calls ({_COLUMNS}, updated_at) VALUES ({', '.join('?' * 17)})",
                (
                    record.id,
                    record.teams_id,
                    record.conversation_id,
                    record.owner,
                    record.owner_name,
                    int(record.group),
                    record.function,
                    json.dumps(record.arguments, ensure_ascii=False, default=str),
                    record.call_id,
                    record.effect,
                    record.said,
                    json.dumps(record.activity, ensure_ascii=False),
                    record.state,
                    record.outcome,
                    record.card_id,
                    record.created_at,
                    time.time(),
                ),
            )
            self._prune()

    def get(self, approval_id: str) -> CallRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM calls WHERE id = ?", (approval_id,)).fetchone()
        if row is None:
            return None
        return CallRecord(
            id=row[0],
            teams_id=row[1],
            conversation_id=row[2],
            owner=row[3],
            owner_name=row[4],
            group=bool(row[5]),
            function=row[6],
            arguments=dict(json.loads(row[7])),
            call_id=row[8],
            effect=row[9],
            said=row[10],
            activity=json.loads(row[11]),
            state=row[12],
            outcome=row[13],
            card_id=row[14],
            created_at=row[15],
        )

    def decide(self, approval_id: str, state: str, outcome: str, card_id: str | None = None) -> bool:
        """Move a waiting call to ``state``; False when it was no longer waiting (it was decided already)."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE calls SET state = ?, outcome = ?, card_id = COALESCE(?, card_id), updated_at = ? "
                "WHERE id = ? AND state = 'waiting'",
                (state, outcome, card_id, time.time(), approval_id),
            )
        return cursor.rowcount == 1

    def finish(self, approval_id: str, state: str, outcome: str) -> None:
        """What became of an approved call: ``done`` or ``failed``."""
        with self._lock:
            self._conn.execute(
                "UPDATE calls SET state = ?, outcome = ?, updated_at = ? WHERE id = ? AND state = 'approved'",
                (state, outcome, time.time(), approval_id),
            )

    def interrupt_running(self) -> int:
        """At start: calls that were running when the server stopped may not have finished; say so on a click."""
        with self._lock:
            rows = self._conn.execute("SELECT id, function FROM calls WHERE state = 'approved'").fetchall()
            for approval_id, function in rows:
                self._conn.execute(
                    "UPDATE calls SET state = 'interrupted', outcome = ?, updated_at = ? WHERE id = ?",
                    (INTERRUPTED.format(function=function), time.time(), approval_id),
                )
        return len(rows)

    def _prune(self) -> None:
        self._conn.execute(
            "DELETE FROM calls WHERE state != 'waiting' AND id NOT IN (SELECT id FROM calls WHERE state != 'waiting' "
            "ORDER BY updated_at DESC LIMIT ?)",
            (KEEP_DECIDED,),
        )
        self._conn.execute(
            "DELETE FROM calls WHERE state = 'waiting' AND created_at < ?", (time.time() - FORGET_WAITING,)
        )
