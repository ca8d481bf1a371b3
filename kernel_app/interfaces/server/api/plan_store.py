"""REST plans (``/v1/plans``) kept in a store, so that a restart does not lose them and every server on
one database sees them (issue 19).

Without ``database_url`` they are the ``plans`` table of ``api.sqlite3`` beside the conversation store
(a :class:`kernel_app.interfaces.server.side_store.DecisionStore`, as Teams' and chat-copilot's plans);
with it, rows of ``pending_decisions`` in PostgreSQL (:mod:`kernel_app.interfaces.server.pg_decisions`).
Executing a plan is its approval: one conditional UPDATE out of ``waiting``, so of two executes, on one
server or two, one runs it and the other gets a 409 with what happened.

The API's statuses are the store's states by another name: ``proposed`` is ``waiting``, ``running`` is
``approved``; ``done``, ``failed`` and ``interrupted`` (the server stopped while it ran) are the same.

A plan is its asker's (``owner``, a principal): to anyone else it is not found (404). Once it ran, it keeps
its steps' results (``steps``) and the conversation it joined (``conversation_id``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kernel_app.interfaces.server.side_store import DecisionStore
from planners.factory import DEFAULT_PLANNER

INTERRUPTED = "The server stopped while this plan ran, so it may not have finished: propose it again."
STATUS_OF_STATE = {"waiting": "proposed", "approved": "running"}  # the others are the same word


@dataclass
class RestPlanRecord:
    id: str
    goal: str
    plan: dict[str, Any] | None  # planners.Plan.to_dict(); None for function-calling until it ran
    planner: str = DEFAULT_PLANNER
    exclude: list[str] = field(default_factory=list)
    result: str | None = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    state: str = "waiting"
    outcome: str = ""
    created_at: float = field(default_factory=time.time)
    # The asker's principal: only they see or execute it. Plans kept before owners were are the local user's
    # (the SQLite column's default, and PostgreSQL's jsonb without the key reads back the field's default).
    owner: str = "local"
    # Once it ran: each step as it ended (kernel_app.conversation.events.PlanStepFinished.kept), so a page
    # reloaded after the run shows the steps' results; a failed step is the last, with its error.
    steps: list[dict[str, Any]] = field(default_factory=list)
    # The conversation its execute joined it to (the web page finds a conversation's plans by it).
    conversation_id: str | None = None

    @property
    def status(self) -> str:
        return STATUS_OF_STATE.get(self.state, self.state)


class RestPlanStore(DecisionStore[RestPlanRecord]):
    """The ``plans`` table of ``api.sqlite3`` (``api.plans`` in PostgreSQL's ``pending_decisions``)."""

    DB_NAME = "api.sqlite3"
    TABLE = "plans"
    RECORD = RestPlanRecord
    INTERRUPTED = INTERRUPTED
