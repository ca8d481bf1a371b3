"""Function calls of free text waiting for their card's click, kept in ``teams.sqlite3`` as plans are.

One row per card: the call the model asked for (function, arguments, the model's call id, its effect),
the conversation it belongs to (the Teams conversation, the engine conversation, the message that asked,
to continue from), who asked, and its state. While the server runs, the turn that asked waits for the
click in memory; after a restart that turn is gone, and the row is what a click finds (:mod:`.calls`).
Deciding it is one conditional UPDATE (:class:`kernel_app.interfaces.server.side_store.DecisionStore`), so two
clicks (or two servers on one data directory or database) decide it once; running it is another
(``claim``), so the waiting turn and a click on another server run it once between them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kernel_app.interfaces.server.side_store import DecisionStore
from kernel_app.interfaces.server.teams.links import DB_NAME

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
    effect: str  # kernel_app.base.effects.Effect value
    said: str  # the message whose turn asked for the call
    activity: dict[str, Any]  # that message, to continue the conversation from
    state: str = "waiting"
    outcome: str = ""
    card_id: str | None = None
    created_at: float = field(default_factory=time.time)
    waiter: str = ""  # the server process whose turn waits for the click (:mod:`.calls`' hand-off)
    beat: float = 0.0  # when that turn last said it still waits (0: it is gone)
    taken_by: str = ""  # the server process that runs the approved call (set once, by ``claim``)


class CallStore(DecisionStore[CallRecord]):
    """The ``calls`` table of ``teams.sqlite3``, beside the links and the plans."""

    DB_NAME = DB_NAME
    TABLE = "calls"
    RECORD = CallRecord
    INTERRUPTED = INTERRUPTED
