"""Plan messages waiting for their decision, kept in ``copilot.sqlite3`` so that a restart does not lose them.

One row per plan message (``type`` 1): a ``/plan``'s plan, or the model's own call in free text as a
one-step plan, who asked, the message that asked and its state. While the server runs, the turn that
asked waits in memory (:class:`kernel_app.interfaces.server.chat_copilot.bot.Pending`) and the row follows its
decision; after a restart the turn is gone and the row is what ``POST /chats/{id}/plan`` finds: the plan
runs, or the call runs on its own, once (:class:`kernel_app.interfaces.server.side_store.DecisionStore`).
With ``database_url`` the rows are in PostgreSQL instead (kind ``copilot.plans`` of
:mod:`kernel_app.interfaces.server.pg_decisions`), shared by every server: the decision may land on a
server whose memory holds no waiting turn (the hand-off in :mod:`.kept`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kernel_app.interfaces.server.chat_copilot.records import DB_NAME
from kernel_app.interfaces.server.side_store import DecisionStore

INTERRUPTED = "the server restarted while it ran, so it may not have finished: ask again"


@dataclass
class WaitingPlan:
    id: str  # the plan message's id
    chat_id: str
    owner: str
    owner_name: str
    goal: str
    said: str  # the message that asked
    plan: dict[str, Any]  # planners.Plan.to_dict(); a model's call is its one step
    editable: bool  # a /plan (its arguments may be edited); else the model's call, approved as it is
    exclude: list[str] = field(default_factory=list)  # a /plan's --exclude
    call_id: str = ""  # a model's call: its id, kept with its result in the conversation
    state: str = "waiting"
    outcome: str = ""
    created_at: float = field(default_factory=time.time)
    # Several servers on one database (issue 19): the decision may land on a server whose memory holds no
    # waiting turn. The waiting turn stamps ``beat`` while it waits; a decision elsewhere leaves ``edits``
    # for it; whoever runs the plan takes it first (``taken_by``, one conditional UPDATE), so it runs once.
    edits: list[str] = field(default_factory=list)
    waiter: str = ""  # the server process whose turn waits
    beat: float = 0.0  # when that turn last said it still waits (0: no turn waits)
    taken_by: str = ""

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [{"function": s["function"], "args": dict(s.get("args") or {})} for s in self.plan.get("steps", [])]


class CopilotPlans(DecisionStore[WaitingPlan]):
    """The ``plans`` table of ``copilot.sqlite3``, beside the web app's view (:mod:`.records`)."""

    DB_NAME = DB_NAME
    TABLE = "plans"
    RECORD = WaitingPlan
    INTERRUPTED = INTERRUPTED
