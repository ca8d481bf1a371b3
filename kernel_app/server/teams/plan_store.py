"""Plans waiting for their card's click, kept in ``teams.sqlite3`` so that a restart does not lose them.

One row per proposed plan: the plan itself (its JSON), who asked and where (the Teams conversation, the
engine conversation, the ``/plan`` message the result is sent after), the card's id once known, and its
state. A click after a restart reads the row and runs the plan; :meth:`PlanStore.decide` moves a plan out
of ``waiting`` in one conditional UPDATE, so two clicks (or two servers on one data directory) run it
at most once.

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

KEEP_DECIDED = 500  # decided plans remembered (a late click shows their outcome)
FORGET_WAITING = 7 * 24 * 3600.0  # seconds: a waiting plan long expired goes (a click then finds no plan)
INTERRUPTED = "The server restarted while this plan ran, so it may not have finished: ask again with /plan."


@dataclass
class PlanRecord:
    id: str
    teams_id: str
    conversation_id: str
    owner: str
    owner_name: str
    group: bool
    goal: str
    plan: dict[str, Any]  # planners.Plan.to_dict()
    activity: dict[str, Any]  # the /plan message, to continue the conversation from
    exclude: list[str] = field(default_factory=list)
    result_name: str | None = None  # /plan ... > NAME
    state: str = "waiting"
    outcome: str = ""
    card_id: str | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [{"function": s.get("function", "?"), "args": s.get("args") or {}} for s in self.plan.get("steps", [])]


_COLUMNS = (
    "id, teams_id, conversation_id, owner, owner_name, is_group, goal, plan, activity, exclude, result_name, "
    "state, outcome, card_id, created_at"
)


class PlanStore(SideStore):
    """The ``plans`` table of ``teams.sqlite3``, beside the links (:mod:`.links`)."""

    DB_NAME = DB_NAME
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS plans (id TEXT PRIMARY KEY, teams_id TEXT NOT NULL, "
        "conversation_id TEXT NOT NULL, owner TEXT NOT NULL, owner_name TEXT NOT NULL, is_group INTEGER NOT NULL, "
        "goal TEXT NOT NULL, plan TEXT NOT NULL, activity TEXT NOT NULL, exclude TEXT NOT NULL, "
        "result_name TEXT, state TEXT NOT NULL, outcome TEXT NOT NULL, card_id TEXT, created_at REAL NOT NULL, "
        "updated_at REAL NOT NULL)"
    )

    def add(self, record: PlanRecord) -> None:
        with self._lock:
            self._conn.execute(
                f"INSERT INTO plans ({_COLUMNS}, updated_at) VALUES ({', '.join('?' * 16)})",
                (
                    record.id,
                    record.teams_id,
                    record.conversation_id,
                    record.owner,
                    record.owner_name,
                    int(record.group),
                    record.goal,
                    json.dumps(record.plan, ensure_ascii=False),
                    json.dumps(record.activity, ensure_ascii=False),
                    json.dumps(record.exclude),
                    record.result_name,
                    record.state,
                    record.outcome,
                    record.card_id,
                    record.created_at,
                    time.time(),
                ),
            )
            self._prune()

    def get(self, plan_id: str) -> PlanRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM plans WHERE id = ?", (plan_id,)).fetchone()
        if row is None:
            return None
        return PlanRecord(
            id=row[0],
            teams_id=row[1],
            conversation_id=row[2],
            owner=row[3],
            owner_name=row[4],
            group=bool(row[5]),
            goal=row[6],
            plan=json.loads(row[7]),
            activity=json.loads(row[8]),
            exclude=list(json.loads(row[9])),
            result_name=row[10],
            state=row[11],
            outcome=row[12],
            card_id=row[13],
            created_at=row[14],
        )

    def decide(self, plan_id: str, state: str, outcome: str, card_id: str | None) -> bool:
        """Move a waiting plan to ``state``; False when it was no longer waiting (it was decided already)."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE plans SET state = ?, outcome = ?, card_id = COALESCE(?, card_id), updated_at = ? "
                "WHERE id = ? AND state = 'waiting'",
                (state, outcome, card_id, time.time(), plan_id),
            )
        return cursor.rowcount == 1

    def finish(self, plan_id: str, state: str, outcome: str) -> None:
        """What became of an approved plan: ``done`` or ``failed``."""
        with self._lock:
            self._conn.execute(
                "UPDATE plans SET state = ?, outcome = ?, updated_at = ? WHERE id = ?",
                (state, outcome, time.time(), plan_id),
            )

    def interrupt_running(self) -> int:
        """At start: plans that were running when the server stopped did not finish; say so on a click."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE plans SET state = 'interrupted', outcome = ?, updated_at = ? WHERE state = 'approved'",
                (INTERRUPTED, time.time()),
            )
        return cursor.rowcount

    def _prune(self) -> None:
        self._conn.execute(
            "DELETE FROM plans WHERE state != 'waiting' AND id NOT IN (SELECT id FROM plans WHERE state != 'waiting' "
            "ORDER BY updated_at DESC LIMIT ?)",
            (KEEP_DECIDED,),
        )
        self._conn.execute(
            "DELETE FROM plans WHERE state = 'waiting' AND created_at < ?", (time.time() - FORGET_WAITING,)
        )
