"""The Teams agent: an Agents SDK ``AgentApplication`` whose handlers drive the REPL's command layer.

Each Teams ``conversation.id`` is one stored engine conversation (:mod:`.links`). A message is
acknowledged at once (the SDK's 202 when the handler returns: Teams' connector waits 15 seconds, then
delivers it again) and answered after, in a proactive turn (``continue_conversation``) that the agent keeps
until it ends, and that a clean shutdown lets finish (:meth:`TeamsAgent.stop`). An activity delivered
again, to this server, after a restart or to another server on the same database, is acknowledged and
not answered twice (:mod:`.seen`). ``expectReplies`` is answered in its response body, as before.
A message is one :meth:`ChatSession.handle` call; its events are rendered as Teams activities:

* personal chats: ``context.streaming_response`` — an informative update at once ("Thinking…", never a
  silent minute while the model composes), another when a function starts ("Running
  BusinessThinking.SWOT…"), the text as it streams, a final message (on channels that do not stream, the
  SDK sends only the final message);
* group chats and channels (where Teams streaming is unreliable): typing indicators while the answer is
  composed, one final message, and only when the bot is mentioned (the mention is stripped from the text);
* ``/plan`` (:mod:`.plans`): the plan as an Adaptive Card with Approve / Reject (``Action.Execute``), kept
  in ``teams.sqlite3`` (:mod:`.plan_store`), so a click after a restart still runs it. The invoke is
  answered at once with the card replaced by its outcome; the plan runs after it, in a proactive turn
  that streams its progress. Only the user who asked may decide, and a plan is decided once.
  ``/plan --planner function-calling`` has no plan to approve: it is a turn, its calls asked as below.
* a function with an effect (MODEL or WRITE) the model wants to call in free text, unless the server
  runs it unasked (a prompt function with ``--approve-model-functions``, as in chat-copilot): an
  Adaptive Card with Approve / Reject, by the same rules (:mod:`.calls`); the turn goes on after the
  click, in a proactive turn (:mod:`.turns`). The call is kept in ``teams.sqlite3`` too: a click after a
  restart runs it once and answers with its result.
* commands that do not call the model (/help, /functions, /results, /reset) never take a place at the
  model's queue: they answer even when it is full.

Errors reach the user as one sentence; the details go to the log.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from kernel_app.conversation.events import ContentBlocked, FunctionCallFinished, FunctionCallStarted, Progress
from kernel_app.conversation.store import ConversationStoreError
from kernel_app.interfaces.server.chat_surface import (
    approver,
    busy_text,
    command_of,
    needs_approval,
    sentence,
    uses_model,
)
from kernel_app.interfaces.server.pg_decisions import open_decisions
from kernel_app.interfaces.server.teams import cards, is_anonymous
from kernel_app.interfaces.server.teams.call_store import CallStore
from kernel_app.interfaces.server.teams.calls import CALL_APPROVAL_TIMEOUT, CallCards
from kernel_app.interfaces.server.teams.links import open_links
from kernel_app.interfaces.server.teams.offered import COMMANDS, OFFERED
from kernel_app.interfaces.server.teams.plan_store import PlanStore
from kernel_app.interfaces.server.teams.plans import PlanCards
from kernel_app.interfaces.server.teams.seen import open_seen
from kernel_app.interfaces.server.teams.turns import (
    SORRY,
    THINKING,
    LiveTurn,
    Renderer,
    continuation,
    relay,
    user_of,
)

if TYPE_CHECKING:
    from microsoft_agents.activity import Activity
    from microsoft_agents.hosting.core import TurnContext

    from kernel_app.commands.dispatch import ChatSession
    from kernel_app.conversation.events import ApprovalNeeded
    from kernel_app.interfaces.server.state import ServerState

__all__ = ["CALL_APPROVAL_TIMEOUT", "COMMANDS", "OFFERED", "SORRY", "WELCOME", "TeamsAgent"]

log = logging.getLogger("kernel_app.teams")

GROUP_TYPES = ("groupChat", "channel")
SHUTDOWN_GRACE = 600.0  # seconds a clean shutdown waits for acknowledged turns, without a request timeout
STOPPED_GRACE = 5.0  # seconds a turn stopped at shutdown has to say so
WELCOME = (
    "Hi, I am Kernel App. Ask me something, or try /run BusinessThinking.SWOT a bakery in a college town, "
    "/plan GOAL (you approve the plan before it runs) or /ask COLLECTION QUESTION. /help lists the commands."
)


def _mentioned(activity: Activity) -> bool:
    me = activity.recipient.id if activity.recipient else None
    return any(m.mentioned is not None and m.mentioned.id == me for m in activity.get_mentions())


class TeamsAgent:
    """The Agents SDK application and adapter, over the server's kernel, engine and store.

    Its parts, the plan cards and the call cards, are given the agent as their host
    (:class:`kernel_app.interfaces.server.teams.host.TeamsHost`)."""

    def __init__(self, state: ServerState, config: dict[str, Any]) -> None:
        from microsoft_agents.authentication.msal import MsalConnectionManager
        from microsoft_agents.hosting.core import AgentApplication, ApplicationOptions, MemoryStorage, TurnState
        from microsoft_agents.hosting.fastapi import CloudAdapter

        self.state = state
        self.anonymous = is_anonymous(config)
        self.connections = MsalConnectionManager(**config)
        self.adapter = CloudAdapter(connection_manager=self.connections)
        self.adapter.on_turn_error = self._on_turn_error
        self.app = AgentApplication[TurnState](
            ApplicationOptions(storage=MemoryStorage(), start_typing_timer=False, remove_recipient_mention=True),
            connection_manager=self.connections,
        )
        # Shared in PostgreSQL with database_url, so a chat whose messages land on several servers is one conversation.
        self.links = open_links(state.store.path, state.settings.database_url)
        # The cards' records: beside the conversation store, or shared in PostgreSQL with database_url.
        plans = open_decisions(PlanStore, state.store.path, state.settings.database_url)
        if interrupted := plans.interrupt_running():
            log.warning(
                "Teams: %d approved plan(s) were running when the server stopped; they did not finish", interrupted
            )
        calls = open_decisions(CallStore, state.store.path, state.settings.database_url)
        if interrupted := calls.interrupt_running():
            log.warning("Teams: %d approved function call(s) were running when the server stopped", interrupted)
        self.plans = PlanCards(self, plans)
        self.calls = CallCards(self, calls)
        self._live: dict[str, LiveTurn] = {}  # per Teams conversation: the turn that holds its lock
        self._sessions: dict[str, ChatSession] = {}  # $last and named results live as long as the server
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # Messages answered 202 whose turns still run: their task -> their Teams conversation.
        self._acknowledged: dict[asyncio.Task[Any], str] = {}
        # Exactly once: activities taken, beside the links (or in PostgreSQL with database_url).
        self.seen = open_seen(state.store.path, state.settings.database_url)

        self.app.activity("message")(self._on_message)
        self.app.conversation_update("membersAdded")(self._on_members_added)
        self.app.adaptive_card.action_execute(cards.APPROVE)(self.plans.on_approve)
        self.app.adaptive_card.action_execute(cards.REJECT)(self.plans.on_reject)
        self.app.adaptive_card.action_execute(cards.APPROVE_CALL)(self.calls.on_approve)
        self.app.adaptive_card.action_execute(cards.REJECT_CALL)(self.calls.on_reject)
        self.app.error(self._on_error)

    def asgi(self) -> Any:
        """The ASGI app serving ``/api/messages`` for this agent (:mod:`.http`)."""
        from kernel_app.interfaces.server.teams.http import build_asgi

        return build_asgi(self.app, self.adapter, self.connections)

    # region conversations

    def session(self, teams_id: str) -> ChatSession:
        """The REPL's command layer on this Teams conversation's stored engine conversation."""
        from kernel_app.commands.dispatch import ChatSession

        engine = self.state.engine
        cached = self._sessions.get(teams_id)
        if cached is not None and engine.store.exists(cached.conversation_id):
            return cached
        # Link first, create second: two servers taking a new chat's first messages at once agree on one id
        # (the link's), and one of them creates it; the other finds it made already. A linked id with no
        # conversation is created under that id, never replaced: it may be the other server's claim whose
        # conversation is not made yet (replacing it split a new chat into two conversations), or one
        # deleted since, which then starts again empty.
        conversation_id = self.links.get(teams_id) or self.links.claim(teams_id, uuid.uuid4().hex[:12])
        if not engine.store.exists(conversation_id):
            try:
                engine.create(id=conversation_id)
            except ConversationStoreError:  # the other server created it between the two calls
                if not engine.store.exists(conversation_id):
                    raise
        session = ChatSession(self.state.kernel, engine=engine, conversation_id=conversation_id)
        self._sessions[teams_id] = session
        return session

    def live_session(self, teams_id: str) -> ChatSession | None:
        """The conversation's session if this server made one (its ``$last`` follows a card's result)."""
        return self._sessions.get(teams_id)

    def _keep(self, session: ChatSession, teams_id: str) -> None:
        if self.links.get(teams_id) != session.conversation_id:  # /reset
            self.links.set(teams_id, session.conversation_id)

    def lock(self, teams_id: str) -> asyncio.Lock:
        """The Teams conversation's lock: its turn in progress holds it."""
        return self._locks.setdefault(teams_id, asyncio.Lock())

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background, kept referenced until it ends."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def answering(self, teams_id: str | None = None) -> int:
        """How many acknowledged messages (of the Teams conversation ``teams_id``, or of any) are still
        being answered: their turn runs, or relays its output."""
        return sum(1 for of in list(self._acknowledged.values()) if teams_id is None or of == teams_id)

    async def stop(self, grace: float | None = None) -> None:
        """A clean shutdown (the server's lifespan): nothing acknowledged is lost.

        The messages answered 202 and the work cards started finish first, for up to ``grace`` seconds
        (default: the server's request timeout, after which a turn is cut anyway); a turn still running
        then is stopped and says so in its conversation. A turn waiting for a card's click stops at once:
        its call is kept, and a click after the restart runs it (:mod:`.calls`)."""
        loop = asyncio.get_running_loop()
        grace = grace if grace is not None else (self.state.request_timeout or SHUTDOWN_GRACE)
        for live in list(self._live.values()):
            if live.waiting is not None and live.task is not None:
                live.task.cancel()
        deadline = loop.time() + grace
        while (pending := self._acknowledged.keys() | self._background) and loop.time() < deadline:
            log.info("Teams: finishing %d acknowledged turn(s) before the server stops", len(pending))
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        for live in list(self._live.values()):
            if live.task is not None:
                live.task.cancel()  # its relay says "stopped before it finished" in the conversation
        if pending := self._acknowledged.keys() | self._background:
            await asyncio.wait(pending, timeout=STOPPED_GRACE)
        for task in self._acknowledged.keys() | self._background:
            task.cancel()
        await asyncio.gather(*self._acknowledged, *self._background, return_exceptions=True)
        self.seen.close()

    # endregion

    # region messages

    async def _on_members_added(self, context: TurnContext, _state: Any) -> None:
        """Say hello once, when the bot itself joins a chat or a team."""
        activity = context.activity
        me = activity.recipient.id if activity.recipient else None
        if any(member.id == me for member in activity.members_added or []):
            await context.send_activity(WELCOME)

    async def _on_message(self, context: TurnContext, _state: Any) -> None:
        """Acknowledge at once (the SDK's 202 when this returns), answer in a proactive turn after it.

        Teams' connector waits 15 seconds for the 202 and then delivers the activity again; a turn on
        the model takes longer. A redelivered activity (one taken before, here or on another server) is
        acknowledged and not answered again. ``expectReplies`` answers in the response body: in the request."""
        activity = context.activity
        group = (activity.conversation.conversation_type or "personal") in GROUP_TYPES
        if group and not _mentioned(activity):
            return
        text = (activity.text or "").strip()
        if not text:
            return
        teams_id = str(activity.conversation.id)
        if activity.id and not self.seen.first(teams_id, str(activity.id)):
            log.info(
                "Teams: activity %s of %s was delivered again: acknowledged, not answered again", activity.id, teams_id
            )
            return
        if activity.delivery_mode == "expectReplies":  # the answer is this response's body: it cannot wait
            await self._answer(context, text, group)
            return
        identity, reference = context.identity, continuation(activity)
        assert identity is not None  # the adapter gives every incoming turn its claims (anonymous ones too)

        async def answer(later: TurnContext) -> None:
            try:
                await self._answer(later, text, group)
            except Exception as error:  # no request to fail any more: say sorry in the conversation
                await self._on_error(later, error)

        async def acknowledged() -> None:
            try:
                await self.adapter.continue_conversation_with_claims(identity, reference, answer)
            except Exception:
                log.exception("Teams: could not answer activity %s of %s", activity.id, teams_id)

        task = asyncio.create_task(acknowledged())
        self._acknowledged[task] = teams_id
        task.add_done_callback(lambda done: self._acknowledged.pop(done, None))

    async def _answer(self, context: TurnContext, text: str, group: bool) -> None:
        """A message's answer: a command, a plan's card, or a turn of the engine."""
        teams_id = str(context.activity.conversation.id)
        refused = OFFERED.refusal(text)
        if refused:
            await context.send_activity(refused)
            return
        command = command_of(text)
        if command == "/help":  # it reads nothing of the conversation: no waiting for its turn in progress
            from kernel_app.commands.dispatch import HELP

            await context.send_activity(OFFERED.help(HELP))
            return
        live = self._live.get(teams_id)
        if live is not None and live.waiting is not None:  # the conversation's turn is paused on a card
            await context.send_activity(
                f"I am waiting for {live.waiting.owner_name} to approve or reject {live.waiting.request.function} "
                "on the card above before I go on."
            )
            return
        lock = self.lock(teams_id)
        await lock.acquire()
        handed_over: list[bool] = []  # a free-text turn's task keeps the lock until it ends, approvals and all
        session = None
        try:
            session = self.session(teams_id)
            if command == "/plan" and self.plans.takes(text):
                await self.plans.propose(context, session, text, group)
            else:
                await self._turn(context, session, text, group, lock, handed_over)
        finally:
            if not handed_over:
                if session is not None:
                    self._keep(session, teams_id)
                lock.release()

    async def _turn(
        self,
        context: TurnContext,
        session: ChatSession,
        text: str,
        group: bool,
        lock: asyncio.Lock,
        handed_over: list[bool],
    ) -> None:
        """One turn of the REPL's command layer, run in a task that takes over ``lock`` (noted in ``handed_over``)."""
        from kernel_app.interfaces.server.limits import Busy

        gate = self.state.gate
        # Never silent, from before a wait for the model's queue (with the embedded model, the turn of
        # another chat may hold it for a minute): "Thinking…" in a personal chat (/run says "Running" at
        # once), a typing indicator in a group chat.
        render = Renderer(context, group)
        render.keep_typing()
        if uses_model(text) and command_of(text) != "/run":
            render.info(THINKING)
        try:
            if uses_model(text):  # /functions, /results, /reset: answered at once, even when the queue is full
                try:
                    await gate.acquire()
                except Busy as busy:
                    await render.final(busy_text(busy.retry_after))
                    return
        except BaseException:
            await render.stop_typing()
            raise
        teams_id = str(context.activity.conversation.id)
        owner, owner_name = user_of(context.activity)
        live = LiveTurn(
            continuation(context.activity),
            context.identity,
            group,
            self.state.request_timeout,
            teams_id=teams_id,
            conversation_id=session.conversation_id,
            said=text,
            owner=owner,
            owner_name=owner_name,
        )
        live.held = uses_model(text)

        def on_event(event: Any) -> None:
            # A call that needs approval says "Running" once approved, not before its card.
            if isinstance(event, ContentBlocked):
                if event.stage not in ("input", "output"):  # those are the answer itself: its refusal
                    live.blocked.append(event.describe())
            elif isinstance(event, FunctionCallStarted) and not needs_approval(self.state, event.function):
                live.say("info", f"Running {event.function}…")
            elif isinstance(event, FunctionCallFinished):
                self.calls.finished(live, event.call_id, event.ok)
                # No second "Thinking…" here: "Running …" stays shown until the text streams, and each
                # informative update takes a place in Teams' stream (one send a second).

        def on_progress(progress: Progress) -> None:
            if not progress.done:
                live.say("info", sentence(progress.text))

        async def ask(request: ApprovalNeeded) -> bool:
            return await self.calls.ask(live, request)

        async def run() -> Any:
            try:
                return await session.handle(
                    text,
                    on_chunk=None if group else (lambda piece: live.say("chunk", piece)),
                    approve=approver(self.state, ask),
                    on_event=on_event,
                    on_progress=on_progress,
                )
            finally:
                if live.held:
                    gate.release()
                    live.held = False

        def ended(task: asyncio.Task[Any]) -> None:
            self.calls.turn_ended(live, finished=not task.cancelled() and task.exception() is None)
            if self._live.get(teams_id) is live:
                del self._live[teams_id]
            self._keep(session, teams_id)
            lock.release()

        live.task = asyncio.create_task(run())
        self._live[teams_id] = live
        live.task.add_done_callback(ended)
        handed_over.append(True)
        try:
            await relay(context, live, render)
        except BaseException:
            live.task.cancel()  # no one left to tell: do not go on (its end releases the lock)
            raise

    async def _on_error(self, context: TurnContext, error: Exception) -> None:
        log.error("Teams: the turn failed: %s", error, exc_info=error)
        await self._on_turn_error(context, error)

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        try:
            await context.send_activity(SORRY)
        except Exception:
            log.debug("Teams: could not say sorry", exc_info=True)
