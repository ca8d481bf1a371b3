"""The Teams agent: an Agents SDK ``AgentApplication`` whose handlers drive the REPL's command layer.

Each Teams ``conversation.id`` is one stored engine conversation (:mod:`.links`). A message is one
:meth:`ChatSession.handle` call; its events are rendered as Teams activities:

* personal chats: ``context.streaming_response`` — an informative update when a function starts
  ("Running BusinessThinking.SWOT…"), the text as it streams, a final message (on channels that do not
  stream, the SDK sends only the final message);
* group chats and channels (where Teams streaming is unreliable): one final message, and only when the
  bot is mentioned (the mention is stripped from the text);
* ``/plan``: the plan as an Adaptive Card with Approve / Reject (``Action.Execute``). The plan is kept in
  ``teams.sqlite3`` (:mod:`.plan_store`), so a click after a restart still runs it. The invoke is
  answered at once with the card replaced by its outcome; the plan runs after it, in a proactive turn
  that streams its progress. Only the user who asked may decide, and a plan is decided once.
* a function with an effect (MODEL or WRITE) the model wants to call in free text: an Adaptive Card
  with Approve / Reject, by the same rules; the turn goes on after the click, in a proactive turn
  (:mod:`.turns`). Such a card lasts while the server runs.

Errors reach the user as one sentence; the details go to the log.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
import uuid
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from kernel_app.conversation.events import FunctionCallStarted, Progress
from kernel_app.server.teams import PATH, cards, is_anonymous
from kernel_app.server.teams.links import TeamsLinks
from kernel_app.server.teams.plan_store import PlanRecord, PlanStore
from kernel_app.server.teams.turns import (
    SORRY,
    CallApproval,
    LiveTurn,
    Renderer,
    adaptive,
    relay,
    reply_text,
    sentence,
)

if TYPE_CHECKING:
    from microsoft_agents.activity import Activity
    from microsoft_agents.hosting.core import TurnContext

    from kernel_app.chat_session import ChatSession
    from kernel_app.conversation.events import ApprovalNeeded
    from kernel_app.server.state import ServerState

__all__ = ["COMMANDS", "SORRY", "WELCOME", "TeamsAgent", "reply_text", "teams_help"]

log = logging.getLogger("kernel_app.teams")

APPROVAL_TIMEOUT = 3600.0  # seconds a proposed plan waits for its card to be clicked (a restart included)
CALL_APPROVAL_TIMEOUT = 600.0  # seconds a free-text turn waits for its function call's card (then: not run)
MAX_CALLS = 500  # decided function-call cards remembered (a late click shows the outcome)
GROUP_TYPES = ("groupChat", "channel")
# What a card's invoke starts runs once its answer is sent: a function that blocks the event loop (a
# sync plugin) must not hold the answer back (Teams shows "Unable to reach app" after a few seconds).
_AFTER_RESPONSE: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("teams_after", default=None)
WELCOME = (
    "Hi, I am Kernel App. Ask me something, or try /run BusinessThinking.SWOT a bakery in a college town, "
    "/plan GOAL (you approve the plan before it runs) or /ask COLLECTION QUESTION. /help lists the commands."
)
PLAN_USAGE = (
    "usage: /plan [--planner P] [--exclude PLUGIN,...] [--max-functions N] GOAL, "
    "e.g. /plan Write a poem about bread, then translate it to French"
)

# The REPL's commands a Teams user may use. Not: /export (writes a file on the server), /history and
# /resume (they reach every stored conversation, other users' too), /set (it changes the engine every
# user shares), /save, /exit.
COMMANDS = frozenset({"/run", "/plan", "/ask", "/reset", "/new", "/help", "/functions", "/results"})


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


def _continuation(activity: Activity) -> Activity:
    """The message a later proactive turn continues from: its replies go to the channel, not a response body."""
    copy = activity.model_copy(deep=True)
    copy.delivery_mode = None
    return copy


def _unanswerable(body: dict[str, Any]) -> str | None:
    """Why an activity (valid JSON, valid to the SDK) cannot be answered, in one line; None when it can."""
    from urllib.parse import urlsplit

    if body.get("deliveryMode") != "expectReplies":
        url = body.get("serviceUrl")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            return "the activity's serviceUrl is missing or not an http(s) URL: replies have nowhere to go"
    if not isinstance(body.get("recipient"), dict) or not body["recipient"].get("id"):
        return "the activity has no recipient.id (the bot it is addressed to)"
    if body.get("type") in ("message", "invoke") and not (
        isinstance(body.get("from"), dict) and (body["from"].get("id") or body["from"].get("aadObjectId"))
    ):
        return "the activity has no from.id (who sent it)"
    return None


def _foreign_card_action(body: dict[str, Any]) -> bool:
    """An ``adaptiveCard/action`` invoke whose verb is none of ours (the SDK would answer 501)."""
    if body.get("type") != "invoke" or body.get("name") != "adaptiveCard/action":
        return False
    value = body.get("value")
    action = value.get("action") if isinstance(value, dict) else None
    verb = action.get("verb") if isinstance(action, dict) else None
    return verb not in (cards.APPROVE, cards.REJECT, cards.APPROVE_CALL, cards.REJECT_CALL)


def _failure(error: BaseException) -> str:
    """An error as the REPL's command layer words it (our errors as they are, others as "failed: ...")."""
    from kernel_app.errors import KernelAppError, innermost_message

    return str(error) if isinstance(error, KernelAppError) else f"failed: {innermost_message(error)}"


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
        self.plans = PlanStore.beside(state.store.path)
        if interrupted := self.plans.interrupt_running():
            log.warning(
                "Teams: %d approved plan(s) were running when the server stopped; they did not finish", interrupted
            )
        self.calls: dict[str, CallApproval] = {}  # free-text function calls waiting for (or decided on) a card
        self._live: dict[str, LiveTurn] = {}  # per Teams conversation: the turn that holds its lock
        self._sessions: dict[str, ChatSession] = {}  # $last and named results live as long as the server
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()

        self.app.activity("message")(self._on_message)
        self.app.conversation_update("membersAdded")(self._on_members_added)
        self.app.adaptive_card.action_execute(cards.APPROVE)(self._on_approve)
        self.app.adaptive_card.action_execute(cards.REJECT)(self._on_reject)
        self.app.adaptive_card.action_execute(cards.APPROVE_CALL)(self._on_approve_call)
        self.app.adaptive_card.action_execute(cards.REJECT_CALL)(self._on_reject_call)
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
            except ValidationError as error:
                where = ".".join(str(part) for part in error.errors()[0]["loc"] if part != "function-after")
                message = f"the body is not an activity: {where or 'the body'} is missing or of the wrong type"
                return JSONResponse({"error": message}, status_code=400)
            except ValueError:
                return JSONResponse({"error": "the body is not an activity (a JSON object)"}, status_code=400)
            problem = _unanswerable(body)
            if problem:
                return JSONResponse({"error": problem}, status_code=400)
            if _foreign_card_action(body):  # an old card, or another app's: say so rather than 501
                return JSONResponse(
                    {
                        "statusCode": 200,
                        "type": "application/vnd.microsoft.activity.message",
                        "value": "This button is not one I know: ask again with a new message.",
                    }
                )
            after: list[Any] = []
            token = _AFTER_RESPONSE.set(after)
            try:
                response = await start_agent_process(request, self.app, self.adapter)
            finally:
                _AFTER_RESPONSE.reset(token)
            response = response if response is not None else Response(status_code=202)
            if after:
                from starlette.background import BackgroundTasks

                async def run_after() -> None:  # async: Starlette would run a plain function in a thread
                    for work in after:
                        work()

                tasks = BackgroundTasks()
                tasks.add_task(run_after)
                response.background = tasks
            return response

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

    def _lock(self, teams_id: str) -> asyncio.Lock:
        return self._locks.setdefault(teams_id, asyncio.Lock())

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _after_response(self, work: Any) -> None:
        """Call ``work()`` once this request's answer is sent (at once outside a request)."""
        after = _AFTER_RESPONSE.get()
        if after is None:
            work()
        else:
            after.append(work)

    def _needs_approval(self, name: str) -> bool:
        """Whether the engine asks before running ``Plugin.Function`` (its effect is MODEL or WRITE)."""
        plugin, _, function = name.partition(".")
        try:
            return bool(self.state.engine.approval_rule(self.state.kernel.get_function(plugin, function)))
        except Exception:
            return False

    # endregion

    # region messages

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
        command = text.split(None, 1)[0].lower() if text.startswith("/") else ""
        if command and command not in COMMANDS:
            await context.send_activity(f"{command} is not available in Teams: type /help for the commands here.")
            return
        if command == "/run" and "--vars" in text.split():
            await context.send_activity("--vars reads a file on the server: in Teams give name=value or --var-json.")
            return
        live = self._live.get(teams_id)
        if live is not None and live.waiting is not None:  # the conversation's turn is paused on a card
            await context.send_activity(
                f"I am waiting for {live.waiting.owner_name} to approve or reject {live.waiting.request.function} "
                "on the card above before I go on."
            )
            return
        lock = self._lock(teams_id)
        await lock.acquire()
        handed_over: list[bool] = []  # a free-text turn's task keeps the lock until it ends, approvals and all
        session = None
        try:
            session = self.session(teams_id)
            if command == "/help":
                from kernel_app.chat_session import HELP

                await context.send_activity(teams_help(HELP))
            elif command == "/plan" and not _function_calling(text):
                await self._plan(context, session, text, group)
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
        from microsoft_agents.activity import Activity

        from kernel_app.server.limits import Busy

        if group:
            await context.send_activity(Activity(type="typing"))
        gate = self.state.gate
        try:
            await gate.acquire()
        except Busy as busy:
            await Renderer(context, group).final(
                f"Sorry, I am busy with other questions: try again in {busy.retry_after} seconds."
            )
            return
        teams_id = str(context.activity.conversation.id)
        owner, owner_name = _user(context.activity)
        live = LiveTurn(_continuation(context.activity), context.identity, group, self.state.request_timeout)
        live.held = True

        def on_event(event: Any) -> None:
            # A call that needs approval says "Running" once approved, not before its card.
            if isinstance(event, FunctionCallStarted) and not self._needs_approval(event.function):
                live.say("info", f"Running {event.function}…")

        def on_progress(progress: Progress) -> None:
            if not progress.done:
                live.say("info", sentence(progress.text))

        async def approve(request: ApprovalNeeded) -> bool:
            return await self._ask_call(live, request, owner, owner_name)

        async def run() -> Any:
            try:
                return await session.handle(
                    text,
                    on_chunk=None if group else (lambda piece: live.say("chunk", piece)),
                    approve=approve,
                    on_event=on_event,
                    on_progress=on_progress,
                )
            finally:
                if live.held:
                    gate.release()
                    live.held = False

        def ended(_task: Any) -> None:
            if self._live.get(teams_id) is live:
                del self._live[teams_id]
            self._keep(session, teams_id)
            lock.release()

        live.task = asyncio.create_task(run())
        self._live[teams_id] = live
        live.task.add_done_callback(ended)
        handed_over.append(True)
        try:
            await relay(context, live)
        except BaseException:
            live.task.cancel()  # no one left to tell: do not go on (its end releases the lock)
            raise

    async def _ask_call(self, live: LiveTurn, request: ApprovalNeeded, owner: str, owner_name: str) -> bool:
        """The engine wants to run a function with an effect: a card; the turn waits for the click."""
        if not request.approval_id:  # the function-calling planner's requests carry none
            request = dataclasses.replace(request, approval_id=f"approval_{uuid.uuid4().hex[:12]}")
        job = CallApproval(request, owner, owner_name, asyncio.get_running_loop().create_future())
        self._remember_call(request.approval_id, job)
        gate = self.state.gate
        if live.held:  # the model's queue is not held while the card waits
            gate.release()
            live.held = False
        live.waiting = job
        live.say("approval", job)
        try:
            approved = await asyncio.wait_for(asyncio.shield(job.decision), CALL_APPROVAL_TIMEOUT)
        except asyncio.TimeoutError:
            job.state, job.outcome = "expired", f"Not answered in time: {request.function} did not run."
            approved = False
        finally:
            live.waiting = None
        await _acquire_waiting(gate)
        live.held = True
        if approved:
            live.say("info", f"Running {request.function}…")
        self._spawn(self._continue(live))
        return approved

    async def _continue(self, live: LiveTurn) -> None:
        """The rest of a turn after its card was decided, in a proactive turn of its conversation."""

        async def turn(context: TurnContext) -> None:
            await relay(context, live)

        try:
            await self.adapter.continue_conversation_with_claims(live.identity, live.activity, turn)
        except Exception:
            log.exception("Teams: the turn after an approval failed")
            if live.task is not None:
                live.task.cancel()  # no one left to tell: do not go on, nor ask for more cards

    def _remember_call(self, approval_id: str, job: CallApproval) -> None:
        self.calls[approval_id] = job
        if len(self.calls) > MAX_CALLS:
            decided = [k for k, j in self.calls.items() if j.state != "waiting"]
            for old in decided[: len(self.calls) - MAX_CALLS]:
                del self.calls[old]

    # endregion

    # region plans

    async def _plan(self, context: TurnContext, session: ChatSession, text: str, group: bool) -> None:
        """Plan now (holding the model's queue), keep the plan, show its card; it runs after the click."""
        from microsoft_agents.activity import Activity

        from kernel_app.chat_session import Reply, _plan_options, _result_name
        from kernel_app.server.limits import Busy

        await context.send_activity(Activity(type="typing"))
        say = Renderer(context, True).final
        rest, result_name = _result_name(text.split(None, 1)[1] if len(text.split(None, 1)) > 1 else "")
        try:
            options, goal = _plan_options(rest)
        except Exception as error:
            await say(reply_text(Reply(_failure(error), "error")))
            return
        if not goal:
            await say(reply_text(Reply(PLAN_USAGE, "error")))
            return
        gate = self.state.gate
        try:
            await gate.acquire()
        except Busy as busy:
            await say(f"Sorry, I am busy with other questions: try again in {busy.retry_after} seconds.")
            return
        try:
            plan = await asyncio.wait_for(self._make_plan(goal, options), self.state.request_timeout)
        except asyncio.TimeoutError:
            await say(f"Sorry, that took longer than {self.state.request_timeout:g} seconds and was stopped.")
            return
        except Exception as error:
            await say(reply_text(Reply(_failure(error), "error")))
            return
        finally:
            gate.release()
        owner, owner_name = _user(context.activity)
        record = PlanRecord(
            id=f"plan_{uuid.uuid4().hex[:12]}",
            teams_id=str(context.activity.conversation.id),
            conversation_id=session.conversation_id,
            owner=owner,
            owner_name=owner_name,
            group=group,
            goal=goal,
            plan=plan.to_dict(),
            activity=_continuation(context.activity).model_dump(mode="json", by_alias=True, exclude_none=True),
            exclude=list(options["exclude"]),
            result_name=result_name,
        )
        self.plans.add(record)
        card = cards.plan_card(record.id, goal, record.steps, owner_name)
        await context.send_activity(Activity(type="message", attachments=[adaptive(card)]))

    async def _make_plan(self, goal: str, options: dict[str, Any]) -> Any:
        from planners import ActionPlanner, SequentialPlanner

        planner_class = ActionPlanner if options["planner"] == "action" else SequentialPlanner
        planner = planner_class(
            self.state.kernel, max_functions=options["max_functions"], excluded=options["exclude"] or None
        )
        return await planner.create_plan(goal)

    async def _on_approve(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide_plan(context, data, approved=True)

    async def _on_reject(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide_plan(context, data, approved=False)

    def _decide_plan(self, context: TurnContext, data: Any, *, approved: bool) -> Any:
        """Answer the card's invoke at once; an approved plan runs after it, in its own turn."""
        plan_id = str(data.get("planId", "")) if isinstance(data, dict) else ""
        record = self.plans.get(plan_id) if plan_id else None
        if record is None:
            return _card_response(cards.gone_card())
        who, name = _user(context.activity)
        if who != record.owner:
            return _message_response(f"Only {record.owner_name}, who asked for this plan, can approve or reject it.")
        card_id = context.activity.reply_to_id
        if record.state == "waiting" and time.time() - record.created_at > APPROVAL_TIMEOUT:
            self.plans.decide(plan_id, "expired", "Not approved in time: nothing ran. Ask again with /plan.", card_id)
        elif approved:
            if self.plans.decide(plan_id, "approved", f"Approved by {name}: running…", card_id):
                record.card_id = card_id or record.card_id
                identity = context.identity
                self._after_response(lambda: self._spawn(self._run_plan(record, identity)))
        else:
            self.plans.decide(plan_id, "rejected", f"Rejected by {name}: nothing ran.", card_id)
        decided = self.plans.get(plan_id) or record  # a second click: the outcome, nothing runs again
        return _card_response(cards.outcome_card(decided.goal, decided.steps, decided.outcome))

    async def _run_plan(self, record: PlanRecord, identity: Any) -> None:
        """The approved plan's progress and result, in a proactive turn of the conversation it came from."""
        from microsoft_agents.activity import Activity

        async def turn(context: TurnContext) -> None:
            async with self._lock(record.teams_id):  # after the conversation's turn in progress, if any
                await self._execute(context, record)

        began = time.perf_counter()
        try:
            await self.adapter.continue_conversation_with_claims(
                identity, Activity.model_validate(record.activity), turn
            )
        except Exception:
            log.exception("Teams: the approved plan's turn failed")
            self.plans.finish(record.id, "failed", "The plan failed: please try again.")
        finally:
            log.debug("Teams: plan ran in %.2f s", time.perf_counter() - began)

    async def _execute(self, context: TurnContext, record: PlanRecord) -> None:
        from microsoft_agents.activity import Activity

        from planners import Plan, PlanExecutor

        render = Renderer(context, record.group)
        total = len(record.steps)

        def on_step(event: str, number: int, step: Any, _result: Any) -> None:
            if event == "started":
                render.info(sentence(f"step {number}/{total} {step.function}"))

        ok = False
        await _acquire_waiting(self.state.gate)
        try:
            executor = PlanExecutor(self.state.kernel, excluded=record.exclude or None, on_step=on_step)
            result = await executor.execute(Plan.from_dict(record.plan))  # validated again: the kernel may differ
            text, ok = result.result or "(no result)", True
        except Exception as error:
            text = f"Sorry, that did not work: {(_failure(error).splitlines() or ['it failed'])[0]}"
        finally:
            self.state.gate.release()
        if ok:
            self._remember_result(record, result.result)
        await render.final(text)
        state, outcome = ("done", "Done: the result is below.") if ok else ("failed", "The plan failed: see below.")
        self.plans.finish(record.id, state, outcome)
        if record.card_id:
            card = cards.outcome_card(record.goal, record.steps, outcome)
            await context.update_activity(Activity(type="message", id=record.card_id, attachments=[adaptive(card)]))

    def _remember_result(self, record: PlanRecord, result: str) -> None:
        """As the REPL's /plan does: the result joins the conversation and becomes $last (and $NAME)."""
        engine = self.state.engine
        if engine.store.exists(record.conversation_id):
            engine.remember(record.conversation_id, f"(planned and ran: {record.goal})", result)
            if not engine.store.get(record.conversation_id).title:
                engine.store.update(record.conversation_id, title=record.goal[:60])
        session = self._sessions.get(record.teams_id)
        if session is not None:
            session.results["last"] = result
            if record.result_name:
                session.results[record.result_name] = result

    # endregion

    # region function calls

    async def _on_approve_call(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide_call(context, data, approved=True)

    async def _on_reject_call(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide_call(context, data, approved=False)

    def _decide_call(self, context: TurnContext, data: Any, *, approved: bool) -> Any:
        """Answer the invoke at once; the engine's turn goes on (it waits on the job's future)."""
        approval_id = str(data.get("approvalId", "")) if isinstance(data, dict) else ""
        job = self.calls.get(approval_id)
        if job is None:
            return _card_response(cards.call_gone_card())
        request = job.request
        who, name = _user(context.activity)
        if who != job.owner:
            return _message_response(f"Only {job.owner_name}, who asked, can approve or reject {request.function}.")
        if job.state == "waiting" and not job.decision.done():
            if approved:
                job.state, job.outcome = "approved", f"Approved by {name}: {request.function} runs."
            else:
                job.state, job.outcome = "rejected", f"Rejected by {name}: {request.function} did not run."
            self._after_response(lambda: job.decision.done() or job.decision.set_result(approved))
        return _card_response(cards.call_outcome_card(request.function, request.arguments, job.outcome))

    # endregion

    async def _on_error(self, context: TurnContext, error: Exception) -> None:
        log.error("Teams: the turn failed: %s", error, exc_info=error)
        await self._on_turn_error(context, error)

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        try:
            await context.send_activity(SORRY)
        except Exception:
            log.debug("Teams: could not say sorry", exc_info=True)


async def _acquire_waiting(gate: Any) -> None:
    """A place at the model's queue for approved work: it waits its turn rather than fail on a full queue."""
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
