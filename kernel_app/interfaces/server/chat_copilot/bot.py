"""The bot's side of a chat: a message in, the engine's events out over the hub, plans held for approval.

Each chat is one stored engine conversation, driven through the REPL's command layer
(:class:`kernel_app.commands.dispatch.ChatSession`): free text is an engine turn (function calling
included), ``/run``, ``/plan`` and ``/ask`` are its commands. What the engine does reaches the web app
as chat-copilot's backend sent it: ``ReceiveBotResponseStatus`` lines while it works, the reply as
``ReceiveMessage`` then ``ReceiveMessageUpdate`` with the cumulative text, a last update with the token
usage, the status cleared, then the HTTP answer.

A plan to approve — ``/plan GOAL``, or a function with an effect the model wants to call in free text —
is a plan message (``type`` 1). The HTTP answer to the message goes back at once; the turn waits, off the
model's queue, until ``POST /chats/{id}/plan`` decides it (only the user who asked, once), then goes on.
The plan message is kept in ``copilot.sqlite3`` too (:mod:`.plan_store`; in PostgreSQL with
``database_url``, where a decision posted to another server reaches the waiting turn: :mod:`.kept`):
after a restart the turn that
asked is gone, and its approval runs the kept plan, or the model's call on its own (the model's next step
depended on the lost turn), answering with its result and saying the server restarted.
In a chat with documents, a question the documents answer is answered from them, with citations.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel_app.base.usage import Usage
from kernel_app.conversation.events import ContentBlocked, FunctionCallStarted, PlanProposed, Progress
from kernel_app.interfaces.server.chat_copilot import shapes
from kernel_app.interfaces.server.chat_copilot.kept import (
    APPROVAL_TIMEOUT,
    LATE,
    Answer,
    DecisionError,
    KeptPlans,
    checked_decision,
)
from kernel_app.interfaces.server.chat_copilot.plan_store import CopilotPlans, WaitingPlan
from kernel_app.interfaces.server.chat_copilot.records import ViewMessage
from kernel_app.interfaces.server.chat_surface import (
    Offered,
    acquire_waiting,
    approver,
    busy_text,
    command_of,
    needs_approval,
    reply_text,
    sentence,
    sorry,
    stalled_text,
    uses_model,
)
from kernel_app.interfaces.server.limits import Stalled, StallWatch
from kernel_app.interfaces.server.pg_decisions import PgDecisionStore

if TYPE_CHECKING:
    from kernel_app.commands.dispatch import ChatSession
    from kernel_app.interfaces.server.chat_copilot.hub import Hub
    from kernel_app.interfaces.server.chat_copilot.records import AnyCopilotRecords
    from kernel_app.interfaces.server.state import ServerState

log = logging.getLogger("kernel_app.copilot")

GENERATING = "Generating bot response"
# The REPL's commands offered here. Not: /reset and /new (a new chat is the web app's own button),
# /history and /resume (they reach every stored conversation), /set (the engine is shared), /export,
# /save (files and memory of the server), /exit.
COMMANDS = frozenset({"/run", "/plan", "/ask", "/help", "/functions", "/results"})
OFFERED = Offered(
    COMMANDS,
    unavailable="{command} is not available here: type /help for the commands.",
    no_vars="--vars reads a file on the server: give name=value or --var-json here.",
)
TICK = 1.0  # seconds between a waiting plan's looks at its row (each says its turn still waits)
SNIPPET_CHARS = 400
MIN_RELEVANCE = 0.2  # as `memory ask`: below it the documents do not answer, the engine does


@dataclass
class Turn:
    """One message being answered: who asked, the streamed reply, the task that runs it."""

    chat_id: str
    user_id: str
    user_name: str
    text: str
    before: int  # the store's last seq before the turn: what came after it is this turn's
    reply: ViewMessage | None = None
    streamed: str = ""
    usage: Usage = field(default_factory=Usage)
    task: asyncio.Task[tuple[str, Usage]] | None = None
    paused: asyncio.Event = field(default_factory=asyncio.Event)  # a plan waits: the HTTP answer can go
    plan: PlanProposed | None = None
    holds_gate: bool = False
    edits: list[str] | None = None  # a decided /plan: the user's edits still to apply, then ``approved``
    approved: bool = False
    last_send: asyncio.Future[None] | None = None  # hub sends from sync callbacks go out in order
    said_before_plan: str = ""  # text streamed before a plan card: sent as its own message, above the card
    blocked: list[str] = field(default_factory=list)  # what the content screen blocked: said under the answer


@dataclass
class Pending:
    """A plan message waiting for its decision."""

    message: ViewMessage
    turn: Turn
    owner: str
    steps: list[dict[str, Any]]
    content: dict[str, Any]
    editable: bool  # a /plan's arguments may be edited; a model's call is approved as it is
    decision: asyncio.Future[tuple[bool, list[str]]]
    state: str = "waiting"  # waiting, approved, rejected, expired


class CopilotBot:
    """The chats' bot over the server's kernel, engine and store; deciding kept plan messages is its part
    :class:`~kernel_app.interfaces.server.chat_copilot.kept.KeptPlans`, given the bot as its host."""

    def __init__(self, state: ServerState, hub: Hub, records: AnyCopilotRecords) -> None:
        self.state = state
        self.hub = hub
        self.records = records
        self.pending: dict[str, Pending] = {}  # plan message id -> its pending decision
        from kernel_app.interfaces.server.pg_decisions import open_decisions

        # the same, kept for after a restart; in PostgreSQL with database_url, shared by every server
        self.plans = open_decisions(CopilotPlans, state.store.path, state.settings.database_url)
        # this bot: unique even for two servers in one process (the waiter / taker its rows name)
        self.instance = f"{state.instance or f'{socket.gethostname()}:{os.getpid()}'}:{uuid.uuid4().hex[:8]}"
        if interrupted := self.plans.interrupt_running():
            log.warning("chat-copilot: %d approved plan(s) were running when the server stopped", interrupted)
        self.kept = KeptPlans(self, self.plans)
        self._sessions: dict[str, ChatSession] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def stopped(self) -> None:
        """The server stops: its waiting turns go with it, so their rows say no turn waits (another server
        sharing the database runs an approved plan at once, as after a restart), and the store closes."""
        for message_id in list(self.pending):
            self.plans.update_waiting(message_id, {"beat": 0.0})
        if isinstance(self.plans, PgDecisionStore):
            self.plans.close()

    async def nap(self, message_id: str, seconds: float, *also: asyncio.Future[Any]) -> None:
        """Sleep up to ``seconds``, less when one of ``also`` is done or (with database_url) when another
        server decides or finishes the plan: its NOTIFY wakes this at once (``DecisionWakes``). The look
        after ``seconds`` stays the fallback: a notification lost to a reconnect costs one."""
        wakes = self.state.decision_wakes
        if wakes is not None and isinstance(self.plans, PgDecisionStore):
            await wakes.nap(self.plans.kind, message_id, seconds, *also)
        elif also:
            await asyncio.wait(also, timeout=seconds)
        else:
            await asyncio.sleep(seconds)

    def done_napping(self, message_id: str) -> None:
        wakes = self.state.decision_wakes
        if wakes is not None and isinstance(self.plans, PgDecisionStore):
            wakes.forget(self.plans.kind, message_id)

    @staticmethod
    def collection(chat_id: str) -> str:
        """A chat's documents: one memory collection per chat."""
        return f"copilot-{chat_id}"

    def session(self, chat_id: str) -> ChatSession:
        from kernel_app.commands.dispatch import ChatSession

        cached = self._sessions.get(chat_id)
        if cached is None:
            cached = ChatSession(self.state.kernel, engine=self.state.engine, conversation_id=chat_id)
            self._sessions[chat_id] = cached
        return cached

    def lock(self, chat_id: str) -> asyncio.Lock:
        """The chat's lock: its turn in progress holds it."""
        return self._locks.setdefault(chat_id, asyncio.Lock())

    def forget(self, chat_id: str) -> None:
        self._sessions.pop(chat_id, None)
        self._locks.pop(chat_id, None)
        for message_id, pending in list(self.pending.items()):
            if pending.turn.chat_id == chat_id and not pending.decision.done():
                pending.state = "expired"
                pending.decision.set_result((False, []))
                del self.pending[message_id]

    # region a message

    async def ask(self, chat_id: str, text: str, user_id: str, user_name: str) -> dict[str, Any]:
        """Answer one message; returns the AskResult once the reply is done or a plan waits for approval."""
        async with self.lock(chat_id):
            self.records.save(ViewMessage(chat_id, shapes.USER, user_id, user_name, text))
            self.records.join(chat_id, user_id)
            messages = self.state.store.messages(chat_id)
            turn = Turn(chat_id, user_id, user_name, text, messages[-1].seq if messages else 0)
            turn.task = asyncio.create_task(self.run_turn(turn))
            self.keep(turn.task)
            paused = asyncio.create_task(turn.paused.wait())
            await asyncio.wait({turn.task, paused}, return_when=asyncio.FIRST_COMPLETED)
            paused.cancel()
        if turn.task.done():
            answer, usage = turn.task.result()
            return shapes.ask_result(answer, chat_id, shapes.token_usage(usage))
        waiting = next((p for p in self.pending.values() if p.turn is turn and p.state == "waiting"), None)
        return shapes.ask_result(waiting.message.content if waiting else "", chat_id)

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Keep a background task referenced until it ends."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run_turn(self, turn: Turn, work: Callable[[], Awaitable[Answer]] | None = None) -> tuple[str, Usage]:
        """The turn (``work``, else the message's answer), from the first status to the last update; never
        raises (the user reads one sentence)."""
        try:
            text, citations = await (work() if work is not None else self._answer(turn))
        except Exception as error:  # a failure of ours: the chat goes on
            log.exception("chat-copilot: the turn failed")
            text, citations = sorry(f"failed: {error}"), None
        finally:
            if turn.holds_gate:
                self.state.gate.release()
                turn.holds_gate = False
        await self._final(turn, text, citations)
        new = (
            self.state.store.messages(turn.chat_id, after=turn.before) if self.state.store.exists(turn.chat_id) else []
        )
        self.records.cover(turn.chat_id, [m.seq for m in new])
        return text, turn.usage

    async def _answer(self, turn: Turn) -> tuple[str, list[dict[str, Any]] | None]:
        from kernel_app.interfaces.server.limits import Busy

        text = turn.text.strip()
        refused = OFFERED.refusal(text)
        if refused:
            return refused, None
        command = command_of(text)
        if command == "/help":
            from kernel_app.commands.dispatch import HELP

            return OFFERED.help(HELP), None
        if uses_model(text):  # /functions, /results...: answered at once, even when the model's queue is full
            try:
                await self.state.gate.acquire()
            except Busy as busy:
                return busy_text(busy.retry_after), None
            turn.holds_gate = True
            await self.status(turn.chat_id, GENERATING)
        if not command:
            sourced = await self._from_documents(turn)
            if sourced is not None:
                # The web app takes citations only from the bot message's first sending (ReceiveMessage; an
                # update changes content or usage alone), as chat-copilot's backend sends them: so that message
                # waits for the answer (the status line says what happens meanwhile).
                await self._open_reply(turn, *sourced)
                return sourced
        # The model's turn opens the bot's message at its first text (_update), as chat-copilot's backend
        # does when it streams: a call it waits to have approved first shows its card above the answer.
        session = self.session(turn.chat_id)
        timeout = self.state.request_timeout
        # As the REST API: a deadline each text, event and status restarts (an approval waited for counts).
        watch = StallWatch(timeout) if timeout else None

        def progressed() -> None:
            if watch is not None:
                watch.progressed()

        def on_chunk(piece: str) -> None:
            progressed()
            self._chunk(turn, piece)

        def on_event(event: Any) -> None:
            progressed()
            self._on_event(turn, event)

        def on_progress(progress: Progress) -> None:
            progressed()
            self._on_progress(turn, progress)

        handled = session.handle(
            text,
            on_chunk=on_chunk,
            confirm=lambda shown: self._confirm(turn, shown),
            approve=approver(self.state, lambda request: self._approve_call(turn, request)),
            on_event=on_event,
            on_progress=on_progress,
        )
        if command == "/plan" or watch is None:  # a plan waits for a person as long as it takes (APPROVAL_TIMEOUT)
            reply = await handled
        else:
            try:
                reply = await watch.run(handled)
            except Stalled:
                return stalled_text(watch.seconds), None
        if reply.usage is not None:
            turn.usage = turn.usage + reply.usage
        return reply_text(reply), None

    # endregion

    # region what the web app sees

    async def status(self, chat_id: str, status: str | None) -> None:
        """The web app's status line for the chat (None clears it)."""
        await self.hub.send(chat_id, "ReceiveBotResponseStatus", chat_id, status)

    async def _open_reply(
        self, turn: Turn, content: str = "", citations: list[dict[str, Any]] | None = None
    ) -> ViewMessage:
        """The bot's message, empty at first (the web app shows it typing), then updated as text comes;
        ``citations`` only here: the web app reads them from this first sending alone."""
        if turn.reply is None:
            turn.reply = ViewMessage(turn.chat_id, shapes.BOT_ROLE, shapes.BOT, "Kernel App", content)
            turn.reply.citations = citations
            await self.hub.send(
                turn.chat_id, "ReceiveMessage", turn.chat_id, turn.user_id, shapes.chat_message(turn.reply)
            )
        return turn.reply

    def _chunk(self, turn: Turn, piece: str) -> None:
        turn.streamed += piece
        self.send_later(turn, self._update(turn, turn.streamed))

    def send_later(self, turn: Turn, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Send from a sync callback: in order, each send queued behind the turn's previous one."""
        previous = turn.last_send

        async def after() -> None:
            if previous is not None:
                await asyncio.shield(previous)
            await coroutine

        task = asyncio.ensure_future(after())
        turn.last_send = task
        self.keep(task)

    async def _update(self, turn: Turn, content: str) -> None:
        reply = await self._open_reply(turn)
        reply.content = content
        await self.hub.send(turn.chat_id, "ReceiveMessageUpdate", shapes.chat_message(reply))

    async def _final(self, turn: Turn, text: str, citations: list[dict[str, Any]] | None) -> None:
        if turn.last_send is not None:
            await asyncio.shield(turn.last_send)  # every streamed update is out before the final one
        if turn.said_before_plan and text.startswith(turn.said_before_plan):
            text = text[len(turn.said_before_plan) :].lstrip()  # that part is its own message, above the card
        notes = [line for line in dict.fromkeys(turn.blocked) if line not in text]
        text = "\n\n".join([text, *(f"> {line}" for line in notes)]) if notes else text
        reply = await self._open_reply(turn, text, citations)
        reply.content, reply.citations = text, citations
        reply.token_usage = shapes.token_usage(turn.usage)
        self.records.save(reply)
        message = shapes.chat_message(reply)
        await self.hub.send(turn.chat_id, "ReceiveMessageUpdate", {**message, "tokenUsage": None})
        await self.hub.send(turn.chat_id, "ReceiveMessageUpdate", message)
        await self.status(turn.chat_id, None)

    async def say(self, chat_id: str, text: str) -> None:
        """A bot message of its own in the chat (a refused document says so), kept and sent to everyone in it."""
        message = ViewMessage(chat_id, shapes.BOT_ROLE, shapes.BOT, "Kernel App", text)
        self.records.save(message)
        await self.hub.send(chat_id, "ReceiveMessage", chat_id, shapes.BOT, shapes.chat_message(message))

    def _on_event(self, turn: Turn, event: Any) -> None:
        if isinstance(event, ContentBlocked):
            if event.stage not in ("input", "output"):  # those are the answer itself: its refusal
                turn.blocked.append(event.describe())
        elif isinstance(event, FunctionCallStarted):
            # A call that needs approval is "Running" once approved (_approve_call, _propose), not before.
            if not needs_approval(self.state, event.function):
                self.send_later(turn, self.status(turn.chat_id, f"Running {event.function}…"))
        elif isinstance(event, PlanProposed):
            turn.plan = event

    def _on_progress(self, turn: Turn, progress: Progress) -> None:
        if not progress.done:
            self.send_later(turn, self.status(turn.chat_id, sentence(progress.text)))

    # endregion

    # region documents

    async def _from_documents(self, turn: Turn) -> tuple[str, list[dict[str, Any]]] | None:
        """A question the chat's documents answer, answered from them (None: they do not, or there are none)."""
        if not self.records.documents(turn.chat_id):
            return None
        from kernel_app.kernel.sourced_answer import answer_with_sources

        memory = self.state.memory()
        collection = self.collection(turn.chat_id)
        hits = await asyncio.to_thread(memory.search, collection, turn.text, 5, MIN_RELEVANCE)
        if not hits:
            return None
        await self.status(turn.chat_id, "Searching the chat's documents…")
        from kernel_app.providers.content_safety import ContentBlockedError, collect_blocks

        try:
            with collect_blocks() as blocks:  # the chat's records the content screen withholds
                answer = await answer_with_sources(
                    self.state.kernel, memory, collection, turn.text, min_relevance=MIN_RELEVANCE
                )
        except ContentBlockedError as blocked:  # the question itself: the refusal is the answer, nothing is kept
            return str(blocked), []
        for report in blocks:
            verdict = report.verdict
            turn.blocked.append(ContentBlocked(report.stage, verdict.category, verdict.reason).describe())
        turn.usage = turn.usage + answer.usage
        self.state.engine.remember(turn.chat_id, turn.text, answer.with_sources_line())
        if not self.state.store.get(turn.chat_id).title:
            self.state.store.update(turn.chat_id, title=turn.text[:60])
        cited = [hit for hit in answer.sources if hit.record.id in answer.cited] or answer.sources
        return answer.answer, [_citation(hit) for hit in cited]

    # endregion

    # region plans

    async def _confirm(self, turn: Turn, shown: str) -> bool | str:
        """The REPL's confirm for ``/plan``: show the plan message, wait for its decision, pass on the edits."""
        if turn.edits is not None:  # decided: each edit is applied (the REPL asks again after each), then the answer
            return turn.edits.pop(0) if turn.edits else turn.approved
        steps = list(turn.plan.steps) if turn.plan is not None else []
        turn.approved, turn.edits = await self._propose(turn, steps, shapes.step_outputs(shown), editable=True)
        return turn.edits.pop(0) if turn.edits else turn.approved

    async def _approve_call(self, turn: Turn, request: Any) -> bool:
        """A function with an effect the model wants to call in free text (and the server does not run
        unasked: :func:`~kernel_app.interfaces.server.chat_surface.approver`): a one-step plan message to decide."""
        step = {"function": request.function, "args": dict(request.arguments)}
        call_id = request.call_id or f"call_{uuid.uuid4().hex[:8]}"  # the function-calling planner's have none
        approved, _ = await self._propose(turn, [step], {}, editable=False, call_id=call_id)
        return approved

    async def _propose(
        self, turn: Turn, steps: list[dict[str, Any]], outputs: dict[int, str], *, editable: bool, call_id: str = ""
    ) -> tuple[bool, list[str]]:
        if turn.last_send is not None:  # the statuses and text so far, then the plan (created after them)
            await asyncio.shield(turn.last_send)
        message = ViewMessage(turn.chat_id, shapes.BOT_ROLE, shapes.BOT, "Kernel App", type=shapes.PLAN)
        goal = turn.text.split(None, 1)[1].strip() if editable and " " in turn.text.strip() else turn.text
        content = shapes.proposed_plan(
            goal=goal,
            said=turn.text,
            steps=steps,
            outputs=outputs,
            descriptions=self._descriptions(steps),
            message_id=message.id,
        )
        message.content = json.dumps(content)
        self.records.save(message)
        planned = [
            {"function": step["function"], "args": dict(step.get("args") or {}), "output": outputs.get(n, f"step{n}")}
            for n, step in enumerate(steps, 1)
        ]
        kept = WaitingPlan(
            message.id, turn.chat_id, turn.user_id, turn.user_name, goal, turn.text, {"goal": goal, "steps": planned},
            editable, _excluded(turn.text) if editable else [], call_id, waiter=self.instance, beat=time.time(),
        )  # fmt: skip
        self.plans.add(kept)
        future: asyncio.Future[tuple[bool, list[str]]] = asyncio.get_running_loop().create_future()
        pending = Pending(message, turn, turn.user_id, steps, content, editable, future)
        self.pending[message.id] = pending
        if turn.reply is not None:  # text before the card stays above it; what follows is a new message below
            turn.reply.content = turn.streamed
            self.records.save(turn.reply)
            turn.said_before_plan += turn.streamed
            turn.reply, turn.streamed = None, ""
        await self.hub.send(turn.chat_id, "ReceiveMessage", turn.chat_id, turn.user_id, shapes.chat_message(message))
        await self.status(turn.chat_id, None)
        if turn.holds_gate:  # the model's queue is not held while a person decides
            self.state.gate.release()
            turn.holds_gate = False
        turn.paused.set()
        try:
            approved, edits = await self._wait_for_decision(pending)
        finally:
            self.pending.pop(message.id, None)
            self.plans.update_waiting(message.id, {"beat": 0.0})  # still waiting (cancelled): no turn waits now
        if approved and not self.plans.claim(message.id, self.instance):
            # Another server found this turn silent for STALE seconds and ran it as after a restart: once.
            log.warning("chat-copilot: plan %s was run by another server; this turn goes on without it", message.id)
            approved, edits = False, []
        if approved:  # the turn runs it (its answer says how it went): not "interrupted" after a restart
            assert turn.task is not None
            turn.task.add_done_callback(lambda task: self._ran(message.id, task))
        if approved:
            await acquire_waiting(self.state.gate)
            turn.holds_gate = True
            await self.status(turn.chat_id, "Running the plan…" if editable else f"Running {steps[0]['function']}…")
        return approved, edits

    async def _wait_for_decision(self, pending: Pending) -> tuple[bool, list[str]]:
        """The decision: posted here (``pending.decision``), or on another server sharing the database (the
        row, read every ``TICK`` seconds and at once when its NOTIFY says it changed; each look that finds
        it waiting stamps ``beat``: this turn lives)."""
        message_id = pending.message.id
        deadline = time.monotonic() + APPROVAL_TIMEOUT
        try:
            return await self._decision(pending, message_id, deadline)
        finally:
            self.done_napping(message_id)

    async def _decision(self, pending: Pending, message_id: str, deadline: float) -> tuple[bool, list[str]]:
        while True:
            await self.nap(message_id, TICK, pending.decision)
            if pending.decision.done():
                return pending.decision.result()
            if time.monotonic() > deadline and self.plans.decide(message_id, "expired", LATE):
                pending.state = "expired"
                self._set_plan_state(pending, shapes.NO_OP)
                return False, []
            if not await asyncio.to_thread(self.plans.update_waiting, message_id, {"beat": time.time()}):
                break  # decided on another server (which showed the decision to the web app)
        record = await asyncio.to_thread(self.plans.get, message_id)
        pending.state = record.state if record is not None else "expired"
        if record is None or record.state != "approved":
            return False, []
        return True, list(record.edits)

    def _ran(self, message_id: str, task: asyncio.Task[tuple[str, Usage]]) -> None:
        """The turn that ran an approved plan ended: its answer is the row's outcome (what a decision
        taken on another server answers with, and a second decision's 409 says)."""
        answer = task.result()[0] if not task.cancelled() and task.exception() is None else "ran"
        self.plans.finish(message_id, "done", answer)

    def _descriptions(self, steps: list[dict[str, Any]]) -> dict[str, str]:
        found = {}
        for step in steps:
            plugin, _, name = str(step["function"]).partition(".")
            try:
                description = self.state.kernel.get_function(plugin, name).description or ""
            except Exception:
                description = ""
            found[str(step["function"])] = description.strip().splitlines()[0] if description.strip() else ""
        return found

    def _set_plan_state(self, pending: Pending, state: int) -> None:
        pending.content = {**pending.content, "state": state}
        pending.message.content = json.dumps(pending.content)
        self.records.save(pending.message)

    async def decide(
        self, chat_id: str, posted: dict[str, Any], user_id: str, user_name: str, said: str
    ) -> dict[str, Any]:
        """``POST /chats/{id}/plan``: approve (state 1) or reject (2) a waiting plan; answers when the turn is
        done: the waiting turn's, or after a restart the kept plan's (or call's) own."""
        message_id = str(posted.get("generatedPlanMessageId") or "")
        pending = self.pending.get(message_id)
        if pending is not None and pending.turn.chat_id == chat_id:
            return await self._decide_waiting(pending, posted, user_id, user_name, said)
        kept = self.plans.get(message_id) if message_id else None
        if kept is not None and kept.chat_id == chat_id:
            return await self.kept.decide(kept, posted, user_id, user_name, said)
        known = self.records.message(message_id)
        if known is not None and known.chat_id == chat_id and known.type == shapes.PLAN:
            raise DecisionError(409, f"plan {message_id} was already decided: nothing runs again", "plan_decided")
        raise DecisionError(
            404, f"proposedPlan.generatedPlanMessageId: no plan {message_id!r} waits in this chat", "plan_not_found"
        )

    async def _decide_waiting(
        self, pending: Pending, posted: dict[str, Any], user_id: str, user_name: str, said: str
    ) -> dict[str, Any]:
        """The turn that asked waits for this: it goes on."""
        message_id, chat_id = pending.message.id, pending.turn.chat_id
        approved, edits = checked_decision(
            message_id, pending.owner, pending.state, pending.steps, pending.editable, posted, user_id
        )
        self.kept.decided(message_id, approved, user_name, edits)
        pending.state = "approved" if approved else "rejected"
        self._set_plan_state(pending, shapes.APPROVED if approved else shapes.REJECTED)
        self.records.save(ViewMessage(chat_id, shapes.USER, user_id, user_name, said))
        pending.decision.set_result((approved, edits))
        turn = pending.turn
        assert turn.task is not None
        answer, usage = await asyncio.shield(turn.task)
        return shapes.ask_result(answer, chat_id, shapes.token_usage(usage))

    def plan_state(self, message: ViewMessage) -> ViewMessage:
        """A stored plan message as it is now: one that waits (in this server's memory, or kept from before a
        restart) shows Approve / Reject; one that no longer does shows as stale (the web app asks for a
        fresh plan)."""
        if message.type != shapes.PLAN:
            return message
        try:
            content = json.loads(message.content)
        except ValueError:
            return message
        waiting = message.id in self.pending or self.kept.still_waiting(message.id)
        if content.get("state") == shapes.APPROVAL_REQUIRED and not waiting:
            content["state"] = shapes.NO_OP
            return ViewMessage(**{**message.__dict__, "content": json.dumps(content)})
        return message

    # endregion


def _citation(hit: Any) -> dict[str, Any]:
    source = str(hit.record.metadata.get("source") or hit.record.id)
    name = Path(source).name
    text = " ".join(hit.record.text.split())
    return {
        # The web app replaces every occurrence of ``link`` in the answer with the citation's number: the
        # record id is what the answer cites ("[id]" shows as "[1]"); the file's name would turn any
        # mention of it in the answer into a bare number.
        "link": hit.record.id,
        "sourceContentType": "text/markdown" if name.lower().endswith(".md") else "text/plain",
        "sourceName": name,
        "snippet": text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…",
        "relevanceScore": round(float(hit.relevance), 4),
    }


def _excluded(text: str) -> list[str]:
    """A ``/plan``'s ``--exclude`` plugins, read as the REPL reads them (its turn already did, so it parses)."""
    from kernel_app.commands.syntax import plan_command

    try:
        return list(plan_command(text)[0]["exclude"] or [])
    except Exception:
        return []
