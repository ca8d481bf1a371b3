"""Plans waiting for their card's click, kept in ``teams.sqlite3`` so that a restart does not lose them.

One row per proposed plan: the plan itself (its JSON), who asked and where (the Teams conversation, the
engine conversation, the ``/plan`` message the result is sent after), the card's id once known, and its
state. A click after a restart reads the row and runs the plan; deciding it is one conditional UPDATE
(:class:`kernel_app.interfaces.server.side_store.DecisionStore`), so two clicks (or two servers on one data
directory) run it at most once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kernel_app.interfaces.server.side_store import DecisionStore
from kernel_app.interfaces.server.teams.links import DB_NAME

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


class PlanStore(DecisionStore[PlanRecord]):
    """The ``plans`` table of ``teams.sqlite3``, beside the links (:mod:`.links`)."""

    DB_NAME = DB_NAME
    TABLE = "plans"
    RECORD = PlanRecord
    INTERRUPTED = INTERRUPTED
