"""Free text's function calls in Teams: the approval card, its click, and a click after a restart.

A part of :class:`kernel_app.interfaces.server.teams.agent.TeamsAgent`, given what it needs of the
agent (:class:`.host.TeamsHost`) and its store. When the engine asks to run a call the server does not run
unasked (:func:`kernel_app.interfaces.server.chat_surface.approver`), the turn's task waits for
the card's click in memory, and the call is kept in ``teams.sqlite3`` (:mod:`.call_store`) as well. The
invoke is answered at once with the card replaced by its outcome:

* while the server runs, the click resolves the waiting turn: the engine runs the call (or is told it was
  rejected) and the model's turn goes on, relayed in a proactive turn (:mod:`.turns`);
* after a restart, the turn that asked is gone: the engine keeps a turn's messages in memory until it
  ends, and the model's next step depended on them (other calls of the same answer, their results), so
  it cannot honestly go on. The click then runs the approved call itself, once, in a proactive turn of
  its conversation, and answers with its result, saying so; the question, the call and its result join
  the stored conversation, so the next message continues from them.

Only the user who asked decides, and a call is decided once (a conditional UPDATE of its row).

Several servers behind one address (issue 19: the rows in PostgreSQL with ``database_url``) add a third
case: the click lands on a server whose memory holds no waiting turn, though the turn still waits on
another. Its row says so: the waiting turn looks at its row every ``TICK`` seconds, and each look that
finds it still waiting stamps ``beat``. The server that gets the click records the decision (the
conditional UPDATE) and leaves the call to the waiting turn, whose next look sees the decision; the one
of them that runs the call takes it first (``claim``, another conditional UPDATE), so it runs once.
Only when no turn has stamped the row for ``STALE`` seconds (its server stopped; a server that stops
cleanly clears the stamp at once) does the clicked server run it as after a restart. The stamp is
the waiting server's clock read by the clicked one's: servers' clocks must agree to within a second or
two (NTP), or a click waits for a turn that is gone a little longer, or runs a call a little sooner,
still once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from kernel_app.interfaces.server.chat_surface import acquire_waiting, remember_call, run_approved_call
from kernel_app.interfaces.server.pg_decisions import PgDecisionStore
from kernel_app.interfaces.server.side_store import DecisionStore
from kernel_app.interfaces.server.teams import cards
from kernel_app.interfaces.server.teams.call_store import CallRecord
from kernel_app.interfaces.server.teams.http import after_response
from kernel_app.interfaces.server.teams.turns import (
    CallApproval,
    LiveTurn,
    Renderer,
    card_response,
    clicked,
    in_its_conversation,
    relay,
    user_of,
)

if TYPE_CHECKING:
    from microsoft_agents.hosting.core import TurnContext

    from kernel_app.conversation.events import ApprovalNeeded
    from kernel_app.interfaces.server.teams.host import TeamsHost

log = logging.getLogger("kernel_app.teams")

CALL_APPROVAL_TIMEOUT = 600.0  # seconds a call waits for its card (then: not run), a restart included


class CallCards:
    """Free text's function calls with an effect: asked on a card, kept in ``store``, decided by a click."""

    TICK = 1.0  # seconds between a waiting turn's looks at its row (each says it still waits)
    STALE = 5.0  # seconds without that after which no turn waits for the call any more

    def __init__(self, host: TeamsHost, store: DecisionStore[CallRecord] | PgDecisionStore[CallRecord]) -> None:
        self.host = host
        self.store = store
        self.waiting: dict[str, CallApproval] = {}  # approval id -> the live turn's wait, while it waits
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # this server process

    # region while the turn waits

    async def ask(self, live: LiveTurn, request: ApprovalNeeded) -> bool:
        """The engine wants to run a function with an effect: a card; the turn waits for the click."""
        if not request.approval_id:  # the function-calling planner's requests carry no ids
            request = dataclasses.replace(
                request,
                approval_id=f"approval_{uuid.uuid4().hex[:12]}",
                call_id=request.call_id or f"call_{uuid.uuid4().hex[:8]}",
            )
        approval_id = request.approval_id
        job = CallApproval(request, live.owner, live.owner_name, asyncio.get_running_loop().create_future())
        self.store.add(
            CallRecord(
                id=approval_id,
                teams_id=live.teams_id,
                conversation_id=live.conversation_id,
                owner=live.owner,
                owner_name=live.owner_name,
                group=live.group,
                function=request.function,
                arguments=dict(request.arguments),
                call_id=request.call_id,
                effect=request.effect,
                said=live.said,
                activity=live.activity.model_dump(mode="json", by_alias=True, exclude_none=True),
                waiter=self.instance,
                beat=time.time(),
            )
        )
        self.waiting[approval_id] = job
        gate = self.host.state.gate
        if live.held:  # the model's queue is not held while the card waits
            gate.release()
            live.held = False
        live.waiting = job
        live.say("approval", job)
        try:  # cancelled (the server stops): the row stays waiting, and a click after the restart runs it
            approved = await self._wait_for_decision(job, request.function)
        finally:
            live.waiting = None
            self.waiting.pop(approval_id, None)
            self.store.update_waiting(approval_id, {"beat": 0.0})  # still waiting: no turn waits for it now
        await acquire_waiting(gate)
        live.held = True
        if approved:
            live.approved[request.call_id] = approval_id  # its FunctionCallFinished marks the row done
            live.say("info", f"Running {request.function}…")
        self.host.spawn(self._continue(live))
        return approved

    async def _wait_for_decision(self, job: CallApproval, function: str) -> bool:
        """Whether the call runs in this turn: decided by a click here (``job``), or on another server
        (its row, read every ``TICK`` seconds, which also says this turn still waits); then taken once."""
        approval_id = job.request.approval_id
        deadline = time.monotonic() + CALL_APPROVAL_TIMEOUT
        try:
            while True:
                await self._nap(approval_id, job.decision)
                if job.decision.done():
                    break  # clicked here
                if time.monotonic() > deadline:
                    self.store.decide(approval_id, "expired", f"Not answered in time: {function} did not run.")
                    break  # expired, or decided by a click just before
                if not self.store.update_waiting(approval_id, {"beat": time.time()}):
                    break  # decided on another server
        finally:
            wakes = getattr(self.host.state, "decision_wakes", None)  # None: no database_url
            if wakes is not None and isinstance(self.store, PgDecisionStore):
                wakes.forget(self.store.kind, approval_id)
        record = self.store.get(approval_id)
        if record is None or record.state != "approved":
            return False
        if self.store.claim(approval_id, self.instance):
            return True
        # Another server took it: it found this turn silent for STALE seconds (a stalled loop) and ran
        # the call on its own, as after a restart. The turn goes on without it, so it runs once.
        log.warning("Teams: %s was run by another server; this turn goes on without it", function)
        return False

    async def _nap(self, approval_id: str, decision: asyncio.Future[Any]) -> None:
        """Up to ``TICK``: less when clicked here, or (with database_url) decided on another server,
        whose NOTIFY wakes this turn at once; the look after ``TICK`` stays, for a lost notification."""
        wakes = getattr(self.host.state, "decision_wakes", None)  # None: no database_url
        if wakes is not None and isinstance(self.store, PgDecisionStore):
            await wakes.nap(self.store.kind, approval_id, self.TICK, decision)
        else:
            await asyncio.wait({decision}, timeout=self.TICK)

    def finished(self, live: LiveTurn, call_id: str, ok: bool) -> None:
        """An approved call of the live turn ran (its FunctionCallFinished): its row is done."""
        approval_id = live.approved.pop(call_id, None)
        if approval_id is not None:
            record = self.store.get(approval_id)
            ran = record.outcome.replace(" runs.", " ran.") if record is not None else ""
            self.store.finish(approval_id, "done" if ok else "failed", ran)

    def turn_ended(self, live: LiveTurn, finished: bool) -> None:
        """The turn is over: its approved calls ran if it ``finished`` (the function-calling planner sends
        no FunctionCallFinished), else it stopped and they may not have; none is left as running."""
        for call_id in list(live.approved):
            if finished:
                self.finished(live, call_id, True)
            else:
                approval_id = live.approved.pop(call_id)
                self.store.finish(approval_id, "failed", "The turn stopped: this call may not have run.")

    async def _continue(self, live: LiveTurn) -> None:
        """The rest of a turn after its card was decided, in a proactive turn of its conversation."""

        async def turn(context: TurnContext) -> None:
            await relay(context, live)

        try:
            await self.host.adapter.continue_conversation_with_claims(live.identity, live.activity, turn)
        except Exception:
            log.exception("Teams: the turn after an approval failed")
            if live.task is not None:
                live.task.cancel()  # no one left to tell: do not go on, nor ask for more cards

    # endregion

    # region the click

    async def on_approve(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide(context, data, approved=True)

    async def on_reject(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide(context, data, approved=False)

    def _decide(self, context: TurnContext, data: Any, *, approved: bool) -> Any:
        """Answer the invoke at once; the waiting turn goes on, or after a restart the call runs on its own."""
        only = "Only {owner_name}, who asked, can approve or reject {function}."
        record = clicked(context, data, "approvalId", self.store, cards.call_gone_card(), only)
        if not isinstance(record, CallRecord):
            return record
        approval_id, name, card_id = record.id, user_of(context.activity)[1], context.activity.reply_to_id
        job = self.waiting.get(approval_id)  # None: the turn waits on another server, or is gone
        waits_elsewhere = job is None and self._waits(record)
        late = f"Not answered in time: {record.function} did not run."
        if self.store.expire_if_late(record, CALL_APPROVAL_TIMEOUT, late):
            pass  # nothing runs: the card shows it came too late
        elif approved:
            ran = "runs." if job is not None or waits_elsewhere else "runs now; its result follows."
            if self.store.decide(approval_id, "approved", f"Approved by {name}: {record.function} {ran}", card_id):
                if job is not None:
                    after_response(lambda: job.decision.done() or job.decision.set_result(True))
                else:  # the waiting turn's server runs it; if there is none, this one does
                    identity = context.identity
                    after_response(lambda: self.host.spawn(self._hand_off(record, identity)))
        else:
            rejected = f"Rejected by {name}: {record.function} did not run."
            if self.store.decide(approval_id, "rejected", rejected, card_id) and job is not None:
                after_response(lambda: job.decision.done() or job.decision.set_result(False))
        decided = self.store.get(approval_id) or record  # a second click: the outcome, nothing runs again
        return card_response(cards.call_outcome_card(record.function, record.arguments, decided.outcome))

    # endregion

    # region a click on another server, or after a restart

    def _waits(self, record: CallRecord) -> bool:
        """Whether a turn (of another server process) still waits for this call: it said so lately."""
        return record.waiter != self.instance and time.time() - record.beat <= self.STALE

    async def _hand_off(self, record: CallRecord, identity: Any) -> None:
        """An approval clicked here for a turn that is not here. While the turn that asked still waits
        (on another server), that server sees the decision at its next look and takes the call
        (``claim``); if it stopped saying it waits (gone, or it never came back from a restart), this one
        takes it and runs it on its own. ``claim`` lets one of them run it, whatever the timing."""
        while True:
            current = self.store.get(record.id)
            if current is None or current.taken_by or current.state != "approved":
                return  # taken by the waiting turn (or finished, or interrupted): nothing to do here
            if not self._waits(current):
                break
            await asyncio.sleep(self.TICK)
        if self.store.claim(record.id, self.instance):
            await self._run_after_restart(record, identity)

    async def _run_after_restart(self, record: CallRecord, identity: Any) -> None:
        """The approved call and its result, in a proactive turn of the conversation it came from."""
        try:
            lock = self.host.lock(record.teams_id)
            await in_its_conversation(
                self.host.adapter, identity, record.activity, lock, lambda context: self._run_call(context, record)
            )
        except Exception:
            log.exception("Teams: the approved call's turn failed")
            self.store.finish(record.id, "failed", f"{record.function} failed: please ask again.")

    async def _run_call(self, context: TurnContext, record: CallRecord) -> None:
        render = Renderer(context, record.group)
        render.info(f"Running {record.function}…")
        server = self.host.state
        output, text, ok = await run_approved_call(server, record.function, record.arguments)
        call = (record.call_id, record.function, record.arguments)
        remember_call(server, record.conversation_id, record.said, call, output, text)
        session = self.host.live_session(record.teams_id)
        if session is not None and server.engine.store.exists(record.conversation_id):
            session.results["last"] = output
        self.store.finish(
            record.id,
            "done" if ok else "failed",
            f"{record.function} ran after a restart: its result is below." if ok else f"{record.function} failed.",
        )
        await render.final(text)

    # endregion
