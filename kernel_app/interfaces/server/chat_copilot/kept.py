"""Deciding chat-copilot's plan messages: the checks every decision passes, and a decision after a restart.

:class:`KeptPlans` is a part of :class:`kernel_app.interfaces.server.chat_copilot.bot.CopilotBot`, given
the kept plans' store and the bot as its host (:class:`BotHost`: what it needs of the bot). Only the user
who asked decides (:func:`checked_decision`, for a waiting turn's decision too), a plan message is
decided once (its row in ``copilot.sqlite3``, :mod:`.plan_store`, leaves ``waiting`` in one conditional
UPDATE) and a step's arguments are edited only in a ``/plan``. After a restart the turn that asked is
gone; ``POST /chats/{id}/plan`` for its kept plan message answers in a turn of its own, after the chat's
turn in progress:

* a ``/plan``'s plan runs with the posted edits (it was planned and checked before; the model is not
  asked again), and its result is the answer, remembered as the REPL's /plan does;
* the model's own call in free text runs on its own: the model's next step depended on the lost turn,
  so the answer is the call's result, saying the server restarted; the question, the call and its result
  join the conversation, so the next message continues from them
  (:func:`kernel_app.interfaces.server.chat_surface.run_approved_call`), as in Teams;
* a rejection answers that nothing ran.

Several servers on one database (issue 19, ``database_url``: the rows in PostgreSQL) add the hand-off of
Teams calls (:mod:`kernel_app.interfaces.server.teams.calls`): the decision lands on a server whose memory
holds no waiting turn, though the turn still waits on another, which stamps its row's ``beat`` every
``TICK`` seconds. This server records the decision (with a ``/plan``'s edits) and leaves the plan to that
turn, whose next look sees it; the deciding request answers with the turn's result (the row's outcome),
which reaches the web app through the hub's backplane. Whoever runs an approved plan takes it first
(``claim``), so it runs once; a row no turn has stamped for ``STALE`` seconds (its server stopped) runs
here, as after a restart. The stamp assumes the servers' clocks agree to within a second or two.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from kernel_app.interfaces.server.chat_copilot import shapes
from kernel_app.interfaces.server.chat_copilot.plan_store import CopilotPlans, WaitingPlan
from kernel_app.interfaces.server.chat_copilot.records import ViewMessage
from kernel_app.interfaces.server.chat_surface import (
    acquire_waiting,
    failure,
    remember_call,
    remember_plan,
    run_approved_call,
    sentence,
    sorry,
)

if TYPE_CHECKING:
    from kernel_app.base.usage import Usage
    from kernel_app.commands.dispatch import ChatSession
    from kernel_app.interfaces.server.chat_copilot.bot import Turn
    from kernel_app.interfaces.server.chat_copilot.records import AnyCopilotRecords
    from kernel_app.interfaces.server.pg_decisions import PgDecisionStore
    from kernel_app.interfaces.server.side_store import DecisionStore
    from kernel_app.interfaces.server.state import ServerState

STALE = 5.0  # seconds a waiting turn may not stamp its row before another server runs its plan itself
HAND_OFF_WAIT = 600.0  # seconds a decision taken here waits for another server's turn to finish the plan
APPROVAL_TIMEOUT = 3600.0  # seconds a plan message waits for its decision (a restart included), then runs nothing
LATE = "not decided in time: nothing ran"
Answer = tuple[str, "list[dict[str, Any]] | None"]  # a turn's text and its citations


class DecisionError(Exception):
    """A plan decision that cannot be taken: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class BotHost(Protocol):
    """What :class:`KeptPlans` needs of the bot that holds it."""

    state: ServerState
    records: AnyCopilotRecords
    instance: str  # this server process: the waiter / taker its plan rows name

    def session(self, chat_id: str) -> ChatSession:
        """The chat's session (its ``$last`` follows a kept plan's result)."""
        ...

    def lock(self, chat_id: str) -> asyncio.Lock:
        """The chat's lock: its turn in progress holds it."""
        ...

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Keep a background task referenced until it ends."""
        ...

    async def run_turn(self, turn: Turn, work: Callable[[], Awaitable[Answer]] | None = None) -> tuple[str, Usage]:
        """A turn from its first status to its last update, ``work`` giving its answer."""
        ...

    def send_later(self, turn: Turn, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Send from a sync callback, in order behind the turn's previous send."""
        ...

    async def status(self, chat_id: str, status: str | None) -> None:
        """The web app's status line for the chat (None clears it)."""
        ...

    async def nap(self, message_id: str, seconds: float, *also: asyncio.Future[Any]) -> None:
        """Sleep up to ``seconds``, less when the plan's row changes on any server (its NOTIFY says so)."""
        ...

    def done_napping(self, message_id: str) -> None:
        """Nothing here waits for the plan's row any more."""
        ...


def checked_decision(
    message_id: str,
    owner: str,
    state: str,
    steps: list[dict[str, Any]],
    editable: bool,
    posted: dict[str, Any],
    user_id: str,
) -> tuple[bool, list[str]]:
    """A decision's checks, in order (who, whether it still waits, what was posted): approved?, the edits."""
    if user_id != owner:
        raise DecisionError(403, "only the user who asked for this plan can approve or reject it", "not_plan_owner")
    if state != "waiting":
        raise DecisionError(409, f"plan {message_id} was already {state}: nothing runs again", "plan_decided")
    decided = posted.get("state")
    if decided not in (shapes.APPROVED, shapes.REJECTED):
        raise DecisionError(400, "proposedPlan.state: 1 approves the plan, 2 rejects it", "plan_state")
    edits: list[str] = []
    if decided == shapes.APPROVED:
        try:
            edits = shapes.plan_edits(steps, posted)
        except shapes.PlanEditError as error:
            raise DecisionError(400, str(error), "plan_edit") from None
        if edits and not editable:
            raise DecisionError(400, "this step is the model's own call: approve or reject it as it is", "plan_edit")
    return decided == shapes.APPROVED, edits


class KeptPlans:
    """Plan messages kept in ``store``: deciding one after a restart, and whether one still waits."""

    def __init__(
        self, host: BotHost, store: CopilotPlans | DecisionStore[WaitingPlan] | PgDecisionStore[WaitingPlan]
    ) -> None:
        self.host = host
        self.store = store

    def decided(self, message_id: str, approved: bool, user_name: str, edits: list[str] | None = None) -> None:
        """The kept row leaves ``waiting`` (once: another server may have decided it). ``edits`` go with it,
        for a waiting turn on another server, in the same conditional update: a losing decision's edits are
        never written over the winner's."""
        outcome = f"approved by {user_name}" if approved else f"rejected by {user_name}: nothing ran"
        changes = {"edits": edits} if edits else None
        if not self.store.decide(message_id, "approved" if approved else "rejected", outcome, changes=changes):
            raise DecisionError(409, f"plan {message_id} was already decided: nothing runs again", "plan_decided")

    async def decide(
        self, kept: WaitingPlan, posted: dict[str, Any], user_id: str, user_name: str, said: str
    ) -> dict[str, Any]:
        """After a restart: no turn waits; an approved plan (or call) runs in a turn of its own, once."""
        if self.store.expire_if_late(kept, APPROVAL_TIMEOUT, LATE):
            kept.state = "expired"
        if kept.state == "interrupted":  # approved before the restart, and running when the server stopped
            raise DecisionError(409, f"plan {kept.id}: {kept.outcome}", "plan_decided")
        try:
            approved, edits = checked_decision(
                kept.id, kept.owner, kept.state, kept.steps, kept.editable, posted, user_id
            )
        except DecisionError as error:  # decided already: say what became of it
            if error.code == "plan_decided" and kept.outcome:
                raise DecisionError(409, f"{error}; {kept.outcome}", error.code) from None
            raise
        elsewhere = self.waits_elsewhere(kept)
        self.decided(kept.id, approved, user_name, edits)
        records = self.host.records
        shown = records.message(kept.id)
        if shown is not None:
            content = {**json.loads(shown.content), "state": shapes.APPROVED if approved else shapes.REJECTED}
            records.save(ViewMessage(**{**shown.__dict__, "content": json.dumps(content)}))
        records.save(ViewMessage(kept.chat_id, shapes.USER, user_id, user_name, said))
        if elsewhere:  # its turn sees the decision at its next look and runs it; unless it stops meanwhile
            if not approved:
                return shapes.ask_result(f"Plan rejected by {user_name}: nothing ran.", kept.chat_id)
            text = await self._hand_off(kept)
            if text is not None:
                return shapes.ask_result(text, kept.chat_id)
        elif approved and not self.store.claim(kept.id, self.host.instance):
            raise DecisionError(409, f"plan {kept.id} is run by another server: nothing runs again", "plan_decided")
        task = asyncio.create_task(self._kept_turn(kept, approved, edits, user_id, user_name, said))
        self.host.keep(task)
        answer, usage = await asyncio.shield(task)
        return shapes.ask_result(answer, kept.chat_id, shapes.token_usage(usage))

    def waits_elsewhere(self, kept: WaitingPlan) -> bool:
        """Whether a turn of another server process still waits for this plan: it said so lately."""
        return kept.waiter != self.host.instance and time.time() - kept.beat <= STALE

    async def _hand_off(self, kept: WaitingPlan) -> str | None:
        """Approved here for a turn that waits on another server: that turn runs it (``claim``), its result
        reaches the web app through the hub's backplane, and this answer says what became of it. None: the
        turn stopped saying it waits before taking it, so this server took it and runs it on its own."""
        deadline = time.monotonic() + HAND_OFF_WAIT
        try:
            while time.monotonic() < deadline:
                current = await asyncio.to_thread(self.store.get, kept.id)
                if current is None:
                    return "The plan is no longer kept: nothing runs again."
                if current.state != "approved":
                    return current.outcome  # done, failed or interrupted on the other server
                stopped = not current.taken_by and not self.waits_elsewhere(current)
                if stopped and await asyncio.to_thread(self.store.claim, kept.id, self.host.instance):
                    return None
                await self.host.nap(kept.id, TICK)  # woken when the other server finishes it
            return "The plan runs on another server: its result appears in the chat."
        finally:
            self.host.done_napping(kept.id)

    async def _kept_turn(
        self, kept: WaitingPlan, approved: bool, edits: list[str], user_id: str, user_name: str, said: str
    ) -> tuple[str, Usage]:
        from kernel_app.interfaces.server.chat_copilot.bot import Turn

        store = self.host.state.store
        async with self.host.lock(kept.chat_id):  # after the chat's turn in progress
            messages = store.messages(kept.chat_id) if store.exists(kept.chat_id) else []
            turn = Turn(kept.chat_id, user_id, user_name, said, messages[-1].seq if messages else 0)
            if not approved:
                function = kept.steps[0]["function"]
                cancelled = "Plan cancelled: nothing ran." if kept.editable else f"Not run: {function}."
                return await self.host.run_turn(turn, lambda: _answered(cancelled))
            if kept.editable:
                return await self.host.run_turn(turn, lambda: self._plan_after_restart(turn, kept, edits))
            return await self.host.run_turn(turn, lambda: self._call_after_restart(turn, kept))

    async def _plan_after_restart(self, turn: Turn, kept: WaitingPlan, edits: list[str]) -> Answer:
        from kernel_app.commands.syntax import edited_plan  # the REPL's own reader of "STEP name=value" edits
        from planners import Plan, PlanExecutor

        plan = Plan.from_dict(kept.plan)
        for edit in edits:
            plan = edited_plan(plan, edit)
        total = len(plan.steps)
        host, server = self.host, self.host.state

        def on_step(event: str, number: int, step: Any, _result: Any) -> None:
            if event == "started":
                host.send_later(turn, host.status(turn.chat_id, sentence(f"step {number}/{total} {step.function}")))

        await host.status(turn.chat_id, "Running the plan…")
        await acquire_waiting(server.gate)
        turn.holds_gate = True  # released when the turn ends
        try:
            executor = PlanExecutor(server.kernel, excluded=kept.exclude or None, on_step=on_step)
            result = await executor.execute(plan)  # validated again: the kernel may differ since
        except Exception as error:
            self.store.finish(kept.id, "failed", "the plan failed")
            return sorry(failure(error)), None
        turn.usage = turn.usage + result.usage
        remember_plan(server, turn.chat_id, kept.goal, result.result)
        host.session(turn.chat_id).results["last"] = result.result
        self.store.finish(kept.id, "done", "ran after a restart")
        return result.result or "(no result)", None

    async def _call_after_restart(self, turn: Turn, kept: WaitingPlan) -> Answer:
        function, arguments = kept.steps[0]["function"], kept.steps[0]["args"]
        server = self.host.state
        await self.host.status(turn.chat_id, f"Running {function}…")
        output, text, ok = await run_approved_call(server, function, arguments)
        remember_call(server, turn.chat_id, kept.said, (kept.call_id, function, arguments), output, text)
        if ok:
            self.host.session(turn.chat_id).results["last"] = output
        self.store.finish(kept.id, "done" if ok else "failed", "ran after a restart" if ok else "failed")
        return text, None

    def still_waiting(self, message_id: str) -> bool:
        """Whether a kept plan message still waits for its decision (from before a restart, in time)."""
        kept = self.store.get(message_id)
        return kept is not None and kept.state == "waiting" and time.time() - kept.created_at <= APPROVAL_TIMEOUT


TICK = 1.0  # seconds between a hand-off's looks at the row


async def _answered(text: str) -> Answer:
    return text, None
