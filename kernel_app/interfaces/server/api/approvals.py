"""Approvals of streamed REST turns shared by every server on one database (issue 19).

A streamed turn (``POST /v1/conversations/{id}/messages``) that meets a function needing approval emits
``approval_needed`` and waits; the client answers with ``POST .../approvals/{approval_id}``, which may
reach another server behind the same address. Without ``database_url`` the waiting turn's future in
:class:`kernel_app.interfaces.server.state.ServerState` is all there is, as before. With it, the approval is
also a row of the shared pending-decision store (:mod:`kernel_app.interfaces.server.pg_decisions`), and
the hand-off is Teams calls' (:mod:`kernel_app.interfaces.server.teams.calls`):

* the waiting turn adds the row, then looks at it every ``TICK`` seconds; each look that finds it still
  waiting stamps ``beat`` (this turn is alive);
* an answer, on any server, is one conditional UPDATE out of ``waiting`` (``decide``): of two answers,
  on one server or two, one counts; the other gets a 409 with what happened;
* the waiting turn sees the decision (at once when the answer landed on its own server) and runs the call
  in its own turn, so it runs once, where the client reads the stream; what became of it is written back
  (``done`` / ``failed``) when the engine reports the call finished;
* an answer to a row no turn has stamped for ``STALE`` seconds (its server stopped) runs nothing: the row
  is ``expired`` and the answer a 409 saying so. The heartbeat assumes the servers' clocks agree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from kernel_app.conversation.events import ApprovalNeeded, Event, FunctionCallFinished
from kernel_app.interfaces.server.pg_decisions import DecisionWakes, PgDecisionStore
from kernel_app.interfaces.server.side_store import DecisionStore

INTERRUPTED = "The server stopped while {function} ran, so it may not have finished: ask again."


@dataclass
class RestApprovalRecord:
    id: str  # the approval id of the approval_needed event
    conversation_id: str
    function: str  # Plugin.Function
    call_id: str  # the model's id for the call (its function_call_finished carries it)
    state: str = "waiting"
    outcome: str = ""
    created_at: float = field(default_factory=time.time)
    waiter: str = ""  # the server process whose turn waits (host:pid)
    beat: float = 0.0  # when that turn last said it still waits


class RestApprovalStore(DecisionStore[RestApprovalRecord]):
    """The spec of the shared rows (kind ``api.approvals``); only opened with ``database_url``."""

    DB_NAME = "api.sqlite3"
    TABLE = "approvals"
    RECORD = RestApprovalRecord
    INTERRUPTED = INTERRUPTED


class ApprovalDecided(Exception):
    """The approval was answered already, or its turn is gone: the message says what happened."""


class SharedApprovals:
    """The waiting side and the answering side of REST approvals over one shared store."""

    TICK = 0.5  # seconds between a waiting turn's looks at its row (each says it still waits)
    STALE = 10.0  # seconds without a look after which no turn waits for the answer any more

    def __init__(
        self,
        store: DecisionStore[RestApprovalRecord] | PgDecisionStore[RestApprovalRecord],
        instance: str,
        wakes: DecisionWakes | None = None,
    ):
        self.store = store
        self.instance = instance
        self.wakes = wakes  # a decision on another server wakes the waiting turn before its next look
        self._here: dict[str, asyncio.Future[bool]] = {}  # approval id -> this server's waiting turn
        self._calls: dict[str, str] = {}  # the model's call id -> approval id, while its turn runs

    async def wait(self, request: ApprovalNeeded, timeout: float) -> bool:
        """Wait for the answer, from any server (or time runs out: no, and the row says ``expired``). The
        row is there already: :meth:`follow` adds it before the client sees the event."""
        approval_id = request.approval_id
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._here[approval_id] = future
        deadline = time.monotonic() + timeout
        try:
            while True:
                await self._nap(approval_id, future)
                if future.done():  # answered on this server: decided in the store already
                    approved = future.result()
                    break
                if time.monotonic() >= deadline:
                    outcome = f"No answer in time: {request.function} did not run."
                    if await asyncio.to_thread(self.store.decide, approval_id, "expired", outcome):
                        return False
                # still waiting: say this turn is alive; False when it was decided meanwhile (any server)
                alive = {"beat": time.time()}
                if not await asyncio.to_thread(self.store.update_waiting, approval_id, alive):
                    found = await asyncio.to_thread(self.store.get, approval_id)
                    approved = found is not None and found.state == "approved"
                    break
        finally:
            self._here.pop(approval_id, None)
            if self.wakes is not None and isinstance(self.store, PgDecisionStore):
                self.wakes.forget(self.store.kind, approval_id)
        if approved:
            self._calls[request.call_id] = approval_id
        return approved

    async def _nap(self, approval_id: str, future: asyncio.Future[bool]) -> None:
        """Up to ``TICK``: less when answered here, or (with the wake-ups) decided on another server."""
        if self.wakes is not None and isinstance(self.store, PgDecisionStore):
            await self.wakes.nap(self.store.kind, approval_id, self.TICK, future)
        else:
            await asyncio.wait({future}, timeout=self.TICK)

    async def answer(self, conversation_id: str, approval_id: str, approved: bool) -> bool:
        """Record the answer: True when it counts (the waiting turn, here or elsewhere, gets it); False
        when no such approval is known; :class:`ApprovalDecided` when it was answered already."""
        record = await asyncio.to_thread(self.store.get, approval_id)
        if record is None or record.conversation_id != conversation_id:
            return False
        if record.state == "waiting" and time.time() - record.beat > self.STALE:
            gone = f"The turn that asked for {record.function} stopped (its server went away): nothing ran; ask again."
            await asyncio.to_thread(self.store.decide, approval_id, "expired", gone)
        state, verb = ("approved", "runs") if approved else ("rejected", "does not run")
        outcome = f"Approved: {record.function} {verb}." if approved else f"Rejected: {record.function} {verb}."
        if await asyncio.to_thread(self.store.decide, approval_id, state, outcome):
            future = self._here.get(approval_id)
            if future is not None and not future.done():
                future.set_result(approved)
            return True
        decided = await asyncio.to_thread(self.store.get, approval_id)
        said = decided.outcome if decided is not None else "it is no longer kept"
        raise ApprovalDecided(f"approval {approval_id} was answered already ({getattr(decided, 'state', '?')}): {said}")

    async def follow(self, conversation_id: str, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """``events`` as they are. An ``approval_needed`` adds its row before it is passed on (the engine
        yields it before it waits: an answer reaching another server at once must find the row); an
        approved call's ``function_call_finished`` settles its row."""
        try:
            async for event in events:
                if isinstance(event, ApprovalNeeded):
                    record = RestApprovalRecord(
                        event.approval_id,
                        conversation_id,
                        event.function,
                        event.call_id,
                        waiter=self.instance,
                        beat=time.time(),
                    )
                    await asyncio.to_thread(self.store.add, record)
                if isinstance(event, FunctionCallFinished) and event.call_id in self._calls:
                    approval_id = self._calls.pop(event.call_id)
                    state = "done" if event.ok else "failed"
                    outcome = (
                        f"{event.function} ran: {event.result}"
                        if event.ok
                        else f"{event.function} failed: {event.result}"
                    )
                    await asyncio.to_thread(self.store.finish, approval_id, state, outcome)
                yield event
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()


def shared_approvals(state: Any) -> SharedApprovals | None:
    """The server's shared approvals with ``database_url`` (opened on first use), else None (as before)."""
    if not state.settings.database_url:
        return None
    if state.shared_approvals is None:
        from kernel_app.interfaces.server.pg_decisions import open_decisions

        store = open_decisions(RestApprovalStore, state.store.path, state.settings.database_url)
        state.shared_approvals = SharedApprovals(store, state.instance, state.decision_wakes)
    return state.shared_approvals
