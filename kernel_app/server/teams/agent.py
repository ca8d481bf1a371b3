"""The Teams agent: an Agents SDK ``AgentApplication`` whose handlers drive the REPL's command layer.

Each Teams ``conversation.id`` is one stored engine conversation (:mod:`.links`). A message is one
:meth:`ChatSession.handle` call; its events are rendered as Teams activities:

* personal chats: ``context.streaming_response`` — an informative update when a function starts
  ("Running BusinessThinking.SWOT…"), the text as it streams, a final message (on channels that do not
  stream, the SDK sends only the final message);
* group chats and channels (where Teams streaming is unreliable): one final message, and only when the
  bot is mentioned (the mention is stripped from the text);
* ``/plan``: the plan as an Adaptive Card with Approve / Reject (``Action.Execute``). The invoke is
  answered at once with the card replaced by its outcome; the plan runs after it, in a proactive turn
  that streams its progress. Only the user who asked may decide, and a plan is decided once.

Errors reach the user as one sentence; the details go to the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from kernel_app.conversation.events import FunctionCallStarted, PlanProposed, Progress
from kernel_app.server.teams import PATH, cards, is_anonymous
from kernel_app.server.teams.links import TeamsLinks

if TYPE_CHECKING:
    from microsoft_agents.activity import Activity
    from microsoft_agents.hosting.core import TurnContext

    from kernel_app.chat_session import ChatSession, Reply
    from kernel_app.server.state import ServerState

log = logging.getLogger("kernel_app.teams")

APPROVAL_TIMEOUT = 3600.0  # seconds a proposed plan waits for its card to be clicked
MAX_JOBS = 500  # plans remembered (waiting ones are never dropped)
GROUP_TYPES = ("groupChat", "channel")
MAX_ERROR_CHARS = 300
WELCOME = (
    "Hi, I am Kernel App. Ask me something, or try /run BusinessThinking.SWOT a bakery in a college town, "
    "/plan GOAL (you approve the plan before it runs) or /ask COLLECTION QUESTION. /help lists the commands."
)
SORRY = "Sorry, something went wrong on my side; please try again."

@dataclass
class PlanJob:
    """A ``/plan`` waiting for its card: who asked, where, and the command still running."""

    owner: str
    owner_name: str
    group: bool
    activity: Activity  # the /plan message: the proactive turn after approval continues from it
    decision: asyncio.Future[bool]
    task: asyncio.Task[Reply] | None = None
    plan: PlanProposed | None = None
    goal: str = ""
    state: str = "waiting"  # waiting, approved, rejected, expired
    outcome: str = ""
    card_id: str | None = None
    progress: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    proposed: asyncio.Event = field(default_factory=asyncio.Event)

    def report(self, event: Progress) -> None:
        if self.state == "approved" and event.stage == "step" and not event.done:
            self.progress.put_nowait(_sentence(event.text))


class _Renderer:
    """Engine output as Teams activities: streamed in personal chats, one message in groups."""

    def __init__(self, context: TurnContext, group: bool) -> None:
        self.context = context
        self.stream = None if group else context.streaming_response
        self.streamed = ""

    def info(self, text: str) -> None:
        if self.stream is not None:
            self.stream.queue_informative_update(text)

    def chunk(self, text: str) -> None:
        self.streamed += text
        if self.stream is not None:
            self.stream.queue_text_chunk(text)

    async def final(self, text: str) -> None:
        if self.stream is None:
            await self.context.send_activity(text)
            return
        if text and text != self.streamed:
            self.stream.queue_text_chunk(("\n\n" if self.streamed else "") + text)
        await self.stream.end_stream()


# The REPL's commands a Teams user may use. Not: /export (writes a file on the server), /history and
# /resume (they reach every stored conversation, other users' too), /set (it changes the engine every
# user shares), /save, /exit.
COMMANDS = frozenset({"/run", "/plan", "/ask", "/reset", "/new", "/help", "/functions", "/results"})


def _sentence(text: str) -> str:
    """A Progress line as an informative update: "running Math.add" -> "Running Math.add…"."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "…"


def teams_help(help_text: str) -> str:
    """The REPL's /help, less the commands Teams does not offer."""
    lines, skipping = [], False
    for line in help_text.splitlines():
        if line.startswith("  /"):
            skipping = line.split()[0] not in COMMANDS
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            lines.append(line)
    text = "\n".join(lines).replace(" (or Ctrl-D)", "").replace(" [--vars FILE]", "")
    return text.rstrip()


def reply_text(reply: Reply) -> str:
    """What the user reads: the answer, or an error as one friendly sentence."""
    if reply.kind == "error":
        first = (reply.text.strip().splitlines() or ["that did not work"])[0]
        if len(first) > MAX_ERROR_CHARS:
            first = first[: MAX_ERROR_CHARS - 1] + "…"
        return f"Sorry, that did not work: {first}"
    if reply.kind == "exit":
        return "There is nothing to leave here: just stop writing, or /reset to start over."
    text = reply.text or "(no answer)"
    return text + "\n(cut: the answer reached its length limit)" if getattr(reply, "cut", False) else text


def _function_calling(text: str) -> bool:
    """``/plan --planner function-calling``: no plan to approve, it plans and runs in one go."""
    words = text.replace("=", " ").split()
    return any(a == "--planner" and b == "function-calling" for a, b in pairwise(words))


def _user(activity: Activity) -> tuple[str, str]:
    sender = activity.from_property
    if sender is None:
        return "", "someone"
    return str(sender.aad_object_id or sender.id or ""), str(sender.name or sender.id or "someone")


def _mentioned(activity: Activity) -> bool:
    me = activity.recipient.id if activity.recipient else None
    return any(m.mentioned is not None and m.mentioned.id == me for m in activity.get_mentions())


class TeamsAgent:
    """The Agents SDK application and adapter, over the server's kernel, engine and store."""

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
        self.links = TeamsLinks.beside(state.store.path)
        self.jobs: dict[str, PlanJob] = {}
        self._sessions: dict[str, ChatSession] = {}  # $last and named results live as long as the server
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()

        self.app.activity("message")(self._on_message)
        self.app.conversation_update("membersAdded")(self._on_members_added)
        self.app.adaptive_card.action_execute(cards.APPROVE)(self._on_approve)
        self.app.adaptive_card.action_execute(cards.REJECT)(self._on_reject)
        self.app.error(self._on_error)

    # region HTTP

    def asgi(self) -> Any:
        """A small FastAPI app with the one route, its JWT checked by the SDK's per-route decorator."""
        from fastapi import FastAPI, Request, Response
        from fastapi.responses import JSONResponse
        from microsoft_agents.activity import Activity
        from microsoft_agents.hosting.fastapi import jwt_authorization_decorator, start_agent_process
        from pydantic import ValidationError

        async def messages(request: Request) -> Response:
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("not an object")
                Activity.model_validate(body)
            except (ValueError, ValidationError):
                return JSONResponse({"error": "the body is not an activity (JSON object)"}, status_code=400)
            response = await start_agent_process(request, self.app, self.adapter)
            return response if response is not None else Response(status_code=202)

        messages.__annotations__ = {"request": Request, "return": Response}  # local names: FastAPI cannot resolve them

        asgi = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        asgi.state.agent_configuration = self.connections.get_default_connection_configuration()
        asgi.add_api_route(PATH, jwt_authorization_decorator(messages), methods=["POST"])
        return asgi

    # endregion

    # region conversations

    def session(self, teams_id: str) -> ChatSession:
        """The REPL's command layer on this Teams conversation's stored engine conversation."""
        from kernel_app.chat_session import ChatSession

        engine = self.state.engine
        cached = self._sessions.get(teams_id)
        if cached is not None and engine.store.exists(cached.conversation_id):
            return cached
        conversation_id = self.links.get(teams_id)
        if conversation_id is None or not engine.store.exists(conversation_id):
            conversation_id = engine.create().id
            self.links.set(teams_id, conversation_id)
        session = ChatSession(self.state.kernel, engine=engine, conversation_id=conversation_id)
        self._sessions[teams_id] = session
        return session

    def _keep(self, session: ChatSession, teams_id: str) -> None:
        if self.links.get(teams_id) != session.conversation_id:  # /reset
            self.links.set(teams_id, session.conversation_id)

    async def _approve_call(self, request: Any) -> bool:
        """Function calls the model makes in free text: the server's rule (prompt functions only with
        ``--approve-model-functions``; anything that writes is refused and the model answers without it)."""
        return bool(self.state.approve_model_functions and request.effect == "model")

    # endregion

    # region handlers

    async def _on_members_added(self, context: TurnContext, _state: Any) -> None:
        """Say hello once, when the bot itself joins a chat or a team."""
        activity = context.activity
        me = activity.recipient.id if activity.recipient else None
        if any(member.id == me for member in activity.members_added or []):
            await context.send_activity(WELCOME)

    async def _on_message(self, context: TurnContext, _state: Any) -> None:
        activity = context.activity
        group = (activity.conversation.conversation_type or "personal") in GROUP_TYPES
        if group and not _mentioned(activity):
            return
        text = (activity.text or "").strip()
        if not text:
            return
        teams_id = str(activity.conversation.id)
        lock = self._locks.setdefault(teams_id, asyncio.Lock())
        command = text.split(None, 1)[0].lower() if text.startswith("/") else ""
        if command and command not in COMMANDS:
            await context.send_activity(f"{command} is not available in Teams: type /help for the commands here.")
            return
        if command == "/run" and "--vars" in text.split():
            await context.send_activity("--vars reads a file on the server: in Teams give name=value or --var-json.")
            return
        async with lock:
            session = self.session(teams_id)
            if command == "/help":
                from kernel_app.chat_session import HELP

                await context.send_activity(teams_help(HELP))
            elif command == "/plan" and not _function_calling(text):
                await self._plan(context, session, text, group)
            else:
                await self._turn(context, session, text, group)
            self._keep(session, teams_id)

    async def _turn(self, context: TurnContext, session: ChatSession, text: str, group: bool) -> None:
        from microsoft_agents.activity import Activity

        from kernel_app.server.limits import Busy

        render = _Renderer(context, group)
        if group:
            await context.send_activity(Activity(type="typing"))

        def on_event(event: Any) -> None:
            if isinstance(event, FunctionCallStarted):
                render.info(f"Running {event.function}…")

        def on_progress(progress: Progress) -> None:
            if not progress.done:
                render.info(_sentence(progress.text))

        gate = self.state.gate
        try:
            await gate.acquire()
        except Busy as busy:
            await render.final(f"Sorry, I am busy with other questions: try again in {busy.retry_after} seconds.")
            return
        try:
            reply = await asyncio.wait_for(
                session.handle(
                    text,
                    on_chunk=None if group else render.chunk,
                    approve=self._approve_call,
                    on_event=on_event,
                    on_progress=on_progress,
                ),
                self.state.request_timeout,
            )
        except asyncio.TimeoutError:
            await render.final(f"Sorry, that took longer than {self.state.request_timeout:g} seconds and was stopped.")
            return
        finally:
            gate.release()
        await render.final(reply_text(reply))

    async def _plan(self, context: TurnContext, session: ChatSession, text: str, group: bool) -> None:
        """Plan now, show the card; the command waits (in a task) for the card's answer and then runs."""
        from microsoft_agents.activity import Activity, Attachment

        await context.send_activity(Activity(type="typing"))
        owner, owner_name = _user(context.activity)
        continuation = context.activity.model_copy(deep=True)
        continuation.delivery_mode = None
        job = PlanJob(owner, owner_name, group, continuation, asyncio.get_running_loop().create_future())
        job.goal = text.split(None, 1)[1].strip() if len(text.split(None, 1)) > 1 else ""

        def on_event(event: Any) -> None:
            if isinstance(event, PlanProposed):
                job.plan = event
                self._remember_job(event.plan_id, job)
                job.proposed.set()

        # The model's queue is held while planning and while the plan runs, not while the card waits.
        gate, held = self.state.gate, False

        async def confirm(_shown: str) -> bool:
            nonlocal held
            gate.release()
            held = False
            try:
                approved = await asyncio.wait_for(asyncio.shield(job.decision), APPROVAL_TIMEOUT)
            except asyncio.TimeoutError:
                job.state, job.outcome = "expired", "Not approved in time: nothing ran."
                return False
            if approved:
                await _acquire_waiting(gate)
                held = True
            return approved

        async def run() -> Reply:
            nonlocal held
            try:
                return await session.handle(
                    text, confirm=confirm, approve=self._approve_call, on_event=on_event, on_progress=job.report
                )
            finally:
                if held:
                    gate.release()

        from kernel_app.server.limits import Busy

        try:
            await gate.acquire()
        except Busy as busy:
            await context.send_activity(
                f"Sorry, I am busy with other questions: try again in {busy.retry_after} seconds."
            )
            return
        held = True
        job.task = asyncio.create_task(run())
        waiter = asyncio.create_task(job.proposed.wait())
        await asyncio.wait({job.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if job.plan is None:  # planning failed (or no goal): the command's answer is the reply
            await _Renderer(context, True).final(reply_text(await job.task))
            return
        card = cards.plan_card(job.plan.plan_id, job.goal, job.plan.steps, owner_name)
        await context.send_activity(
            Activity(type="message", attachments=[Attachment(content_type=cards.CONTENT_TYPE, content=card)])
        )

    def _remember_job(self, plan_id: str, job: PlanJob) -> None:
        """Decided plans stay known (a late click shows the outcome), the oldest dropped past MAX_JOBS."""
        self.jobs[plan_id] = job
        if len(self.jobs) > MAX_JOBS:
            for old in [k for k, j in self.jobs.items() if j.state != "waiting"][: len(self.jobs) - MAX_JOBS]:
                del self.jobs[old]

    async def _on_approve(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide(context, data, approved=True)

    async def _on_reject(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide(context, data, approved=False)

    def _decide(self, context: TurnContext, data: Any, *, approved: bool) -> Any:
        """Answer the card's invoke at once; an approved plan runs after it, in its own turn."""
        plan_id = str((data or {}).get("planId", "")) if isinstance(data, dict) else ""
        job = self.jobs.get(plan_id)
        if job is None or job.plan is None:
            return _card_response(cards.gone_card())
        who, name = _user(context.activity)
        if who != job.owner:
            return _message_response(f"Only {job.owner_name}, who asked for this plan, can approve or reject it.")
        if job.state != "waiting":  # a second click: the card shows what happened, nothing runs again
            return _card_response(cards.outcome_card(job.goal, job.plan.steps, job.outcome))
        job.card_id = context.activity.reply_to_id
        if approved:
            job.state, job.outcome = "approved", f"Approved by {name}: running…"
            task = asyncio.create_task(self._run_approved(job, context.identity))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            job.state, job.outcome = "rejected", f"Rejected by {name}: nothing ran."
        job.decision.set_result(approved)
        return _card_response(cards.outcome_card(job.goal, job.plan.steps, job.outcome))

    async def _run_approved(self, job: PlanJob, identity: Any) -> None:
        """The approved plan's progress and result, in a proactive turn of the conversation it came from."""

        async def relay(context: TurnContext) -> None:
            from microsoft_agents.activity import Activity, Attachment

            render = _Renderer(context, job.group)
            assert job.task is not None and job.plan is not None
            while True:
                while not job.progress.empty():  # what happened before this turn began, too
                    render.info(job.progress.get_nowait())
                if job.task.done():
                    break
                getter = asyncio.ensure_future(job.progress.get())
                done, _ = await asyncio.wait({getter, job.task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    render.info(getter.result())
                else:
                    getter.cancel()
            reply = job.task.result()
            await render.final(reply_text(reply))
            job.outcome = "Done: the result is below." if reply.kind != "error" else "The plan failed: see below."
            if job.card_id:
                card = cards.outcome_card(job.goal, job.plan.steps, job.outcome)
                await context.update_activity(
                    Activity(
                        type="message",
                        id=job.card_id,
                        attachments=[Attachment(content_type=cards.CONTENT_TYPE, content=card)],
                    )
                )

        began = time.perf_counter()
        try:
            await self.adapter.continue_conversation_with_claims(identity, job.activity, relay)
        except Exception:
            log.exception("Teams: the approved plan's turn failed")
        finally:
            log.debug("Teams: plan ran in %.2f s", time.perf_counter() - began)

    async def _on_error(self, context: TurnContext, error: Exception) -> None:
        log.error("Teams: the turn failed: %s", error, exc_info=error)
        await self._on_turn_error(context, error)

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        try:
            await context.send_activity(SORRY)
        except Exception:
            log.debug("Teams: could not say sorry", exc_info=True)

    # endregion


async def _acquire_waiting(gate: Any) -> None:
    """A place at the model's queue for an approved plan: it waits its turn rather than fail on a full queue."""
    from kernel_app.server.limits import Busy

    while True:
        try:
            await gate.acquire()
            return
        except Busy as busy:
            await asyncio.sleep(min(busy.retry_after, 1))


def _card_response(card: dict[str, Any]) -> Any:
    from microsoft_agents.activity import AdaptiveCardInvokeResponse

    return AdaptiveCardInvokeResponse(status_code=200, type=cards.CONTENT_TYPE, value=card)


def _message_response(text: str) -> Any:
    from microsoft_agents.activity import AdaptiveCardInvokeResponse

    return AdaptiveCardInvokeResponse(status_code=200, type="application/vnd.microsoft.activity.message", value=text)
