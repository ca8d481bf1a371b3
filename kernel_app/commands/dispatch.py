"""The slash-command layer every chat surface shares: the session and its command table.

:class:`ChatSession` turns one line into one :class:`Reply`: free text is one turn of the conversation
engine (:mod:`kernel_app.conversation`, with function calling where the service supports it), a slash
command runs a function, a plan, a memory question... The REPL, Teams and chat-copilot all drive it, line
by line, and render its replies their own way; it holds no terminal or HTTP code. Every command's outcome
also goes into the stored conversation, so "now shift that to cleaning services" can follow a
`/run BusinessThinking.SWOT a bakery`.

Reading a command's arguments is :mod:`.syntax`; answer lengths and whether tools fit, :mod:`.sizing`;
``/export``, :mod:`.export`; what ``/help`` and ``/functions`` list, as data each surface renders,
:mod:`.listing`.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import KernelAppError, innermost_message
from kernel_app.base.usage import Usage
from kernel_app.commands.export import conversation_markdown
from kernel_app.commands.listing import HELP, Listing, Result, ResultsListing, function_listing
from kernel_app.commands.sizing import answer_tokens, function_max_tokens, tools_fit
from kernel_app.commands.syntax import (
    edited_plan,
    plan_options,
    resolve_results,
    result_name,
    split_first,
    variables_and_text,
)
from kernel_app.conversation.engine import SYSTEM, Approve, ConversationEngine, ask_approval
from kernel_app.conversation.events import ApprovalNeeded, Done, ErrorEvent, Event, PlanProposed, Progress, TextDelta

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.contents import ChatHistory

    from kernel_app.conversation.store import AnyConversationStore

PLAN_USAGE = (
    "usage: /plan [--planner P] [--exclude PLUGIN,...] [--max-functions N] GOAL, "
    "e.g. /plan Write a poem about bread, then translate it to French"
)
SETTINGS_HELP = "max_tokens N (the longest answer, in tokens), service NAME (local, openai, azure)"

# True runs the plan, False does not; a text "STEP name=value ..." edits that step's arguments and asks again.
Confirm = Callable[[str], "bool | str | Awaitable[bool | str]"]


@dataclass
class Reply:
    """What the session says back. ``kind``: answer, result, plan, help, error or exit."""

    text: str
    kind: str = "answer"
    usage: Usage | None = None
    streamed: bool = False  # the text already went to on_chunk
    cut: bool = False  # the answer reached its length limit (the REPL says so; the text does not)
    limit: int | None = None  # that limit, when it is a function's own max_tokens (not the chat's)
    # /help's, /functions' and /results' data: ``text`` is its terminal form; a chat surface renders markdown.
    listing: Listing | None = None

    @property
    def is_error(self) -> bool:
        return self.kind == "error"


class ChatSession:
    """``reply = await session.handle(line, on_chunk=print_piece, confirm=ask_user)``; never raises for bad input.

    ``store``: where conversations live (None: in memory only); ``conversation_id`` resumes one.
    """

    def __init__(
        self,
        kernel: Kernel,
        *,
        max_turns: int | None = None,
        system: str = SYSTEM,
        store: AnyConversationStore | None = None,
        conversation_id: str | None = None,
        engine: ConversationEngine | None = None,
        services: Callable[[str], Any] | None = None,
    ) -> None:
        self.kernel = kernel
        self.system = system
        if engine is None:
            engine = ConversationEngine(kernel, store, system=system, max_turns=max_turns)
            if not tools_fit(engine):
                # The schemas of every function would overflow a small context (46 of them are ~4,400
                # tokens, more than the embedded model's 4,096): offer none; /run and /plan still call them.
                engine = ConversationEngine(kernel, store, system=system, max_turns=max_turns, functions=())
            # The answer's length follows the model's context (and /set max_tokens), not a fixed 500.
            engine.max_tokens = answer_tokens(engine.context_tokens)
        self.engine = engine
        if conversation_id is not None:
            self.engine.store.get(conversation_id)  # ConversationNotFoundError names the list command
        self.conversation_id = conversation_id or self.engine.create().id
        self.usage = Usage()
        self.results: dict[str, str] = {}  # $last and the results named with `> NAME`
        self._services = services  # /set service NAME: makes that chat service (None: not offered)
        self._max_tokens_set = False

    def has_model_to_load(self) -> bool:
        """Whether the chat service loads a model into this process (the embedded one); hosted ones do not."""
        return callable(getattr(self.engine.service, "model", None))

    def load_in_background(self) -> Callable[[], bool]:
        """Start loading the embedded model now, so the prompt need not wait for it (the first answer
        does, in the service's own once-only load); returns "is it still loading?". Other services
        load nothing: always False.

        llama.cpp's load holds the GIL (~3 s for the default tier): keys typed meanwhile show when it
        ends (the terminal keeps them), but a person usually types for longer than that."""
        import threading

        if not self.has_model_to_load():
            return lambda: False
        # The embedded service's loader (has_model_to_load checked it is there; the base class has none).
        load = self.engine.service.model  # pyright: ignore[reportAttributeAccessIssue]

        def run() -> None:
            import contextlib

            with contextlib.suppress(Exception):  # the first answer meets the same error and says it
                load()

        thread = threading.Thread(target=run, name="kernel-app-model-load", daemon=True)
        thread.start()
        return thread.is_alive

    @property
    def history(self) -> ChatHistory:
        """What the model is shown next: the system message and the stored messages that fit."""
        return self.engine.chat_history(self.engine.prompt_messages(self.conversation_id))

    async def handle(
        self,
        line: str,
        *,
        on_chunk: Callable[[str], None] | None = None,
        confirm: Confirm | None = None,
        approve: Approve | None = None,
        on_event: Callable[[Event], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Reply:
        """``confirm`` approves a /plan; ``approve`` a function with an effect the model wants to call
        (None: refused); ``on_event`` sees every engine event (function calls, approvals) of free text
        and a /plan's proposal; ``on_progress`` what slow commands are doing (planning, each plan step,
        /run, /ask, /save), for a status line."""
        line = line.strip()
        if not line:
            return Reply("", "help")

        def emit(event: Event) -> None:
            target = on_progress if isinstance(event, Progress) else on_event
            if target is not None:
                target(event)  # type: ignore[arg-type]

        try:
            if line.startswith("/"):
                reply = await self._command(line, on_chunk, confirm, emit, approve)
            else:
                reply = await self._chat(line, on_chunk, approve, emit)
        except KernelAppError as error:  # PlanningError, FunctionNotFoundError, store errors...
            return Reply(str(error), "error")
        except Exception as error:  # a model or plugin failure must not end the session
            return Reply(f"failed: {innermost_message(error)}", "error")
        if reply.kind in ("result", "answer") and not reply.is_error:
            self.results["last"] = reply.text
        return reply

    # region commands

    async def _command(
        self,
        line: str,
        on_chunk: Callable[[str], None] | None,
        confirm: Confirm | None,
        emit: Callable[[Event], None],
        approve: Approve | None = None,
    ) -> Reply:
        name, _, rest = line.partition(" ")
        name, rest = name.lower(), rest.strip()
        if name in ("/exit", "/quit"):
            return Reply("", "exit")
        if name == "/help":
            return Reply(HELP.text(), "help", listing=HELP)
        if name in ("/reset", "/new"):
            self.conversation_id = self.engine.create().id
            return Reply("A new conversation: the model no longer sees the old one.", "help")
        if name == "/functions":
            functions = function_listing(self.kernel)
            return Reply(functions.text(), "help", listing=functions)
        if name == "/history":
            return Reply(self._history(), "help")
        if name == "/resume":
            return self._resume(rest)
        if name == "/set":
            return self._set(rest)
        if name == "/results":
            results = self._results()
            return Reply(results.text(), "help", listing=results)
        if name == "/save":
            return await self._save(rest, emit)
        if name == "/export":
            return self._export(rest)
        if name in ("/run", "/plan", "/ask"):
            rest, named = result_name(rest)
            if name == "/run":
                reply = await self._run(rest, on_chunk, emit)
            elif name == "/plan":
                reply = await self._plan(rest, confirm, emit, approve)
            else:
                reply = await self._ask(rest, emit)
            if named and reply.kind in ("result", "answer"):
                self.results[named] = reply.text
            return reply
        return Reply(f"unknown command {name}: type /help for the commands", "error")

    async def _run(
        self, rest: str, on_chunk: Callable[[str], None] | None = None, emit: Callable[[Event], None] | None = None
    ) -> Reply:
        from kernel_app.base.errors import MissingVariableError
        from kernel_app.kernel.runner import resolve_function, run_chain

        name, _, arguments = rest.partition(" ")
        if not name:
            return Reply("usage: /run Plugin.Function [name=value ...] [text], e.g. /run Math.add a=2 b=3", "error")
        function = resolve_function(self.kernel, name)
        variables, text = variables_and_text(arguments)
        variables = {key: self._resolve(value) if isinstance(value, str) else value for key, value in variables.items()}
        text = self._resolve(text)
        shown = f"{function.plugin_name}.{function.name}"
        if emit is not None:
            emit(Progress("run", f"running {shown}"))
        streamed: list[str] = []

        def chunk(piece: str) -> None:
            streamed.append(piece)
            if on_chunk is not None:
                on_chunk(piece)

        try:
            result = await run_chain(
                self.kernel,
                [function],
                input=text or None,
                variables=variables,
                on_chunk=chunk if on_chunk is not None else None,
            )
        except MissingVariableError as missing:  # say how to pass it the REPL's way
            hint = "add the text after the name" if missing.variable == "input" else f"add {missing.variable}=VALUE"
            return Reply(f"{missing.function} needs '{missing.variable}': {hint}", "error")
        finally:
            if emit is not None:
                emit(Progress("run", f"ran {shown}", done=True))
        said = f"(ran {name} on: {text or 'no input'})"
        self._remember(said, result.result, title=f"{shown} {arguments.strip()}")
        limit = function_max_tokens(function)
        # A prompt function's stream carries no finish reason here; all its max_tokens used means cut.
        cut = limit is not None and result.usage.completion_tokens >= limit
        reply = Reply(result.result, "result", result.usage, streamed=bool(streamed), cut=cut, limit=limit)
        return self._counted(reply)

    async def _plan(
        self,
        rest: str,
        confirm: Confirm | None,
        emit: Callable[[Event], None],
        approve: Approve | None = None,
    ) -> Reply:
        import inspect

        from planners import PlanExecutor
        from planners.factory import create_planner, proposes_plan

        options, goal = plan_options(rest)
        if not goal:
            return Reply(PLAN_USAGE, "error")
        from kernel_app.kernel.screening import require_clean, screen_of

        await require_clean(screen_of(self.kernel), goal, "input")  # ContentBlockedError: the one-line reply
        kind, excluded, limit = options["planner"], options["exclude"] or None, options["max_functions"]
        emit(Progress("planning", f"planning with the {kind} planner"))
        if not proposes_plan(kind):  # function-calling: no plan to approve, each effectful call is asked

            async def approve_call(request: Any) -> bool:  # a MODEL or WRITE call, asked like free text's
                asked = ApprovalNeeded("", "", request.function, dict(request.args), request.effect.value)
                emit(asked)
                return (await ask_approval(approve, asked)) is True  # a Refusal is a no, as False

            try:
                caller: Any = create_planner(
                    kind, self.kernel, excluded=excluded, max_functions=limit, approve_call=approve_call
                )
                outcome = await caller.run(goal)
            finally:
                emit(Progress("planning", "planned", done=True))
            self._remember(f"(planned and ran: {goal})", outcome.answer, title=goal)
            return self._counted(Reply(outcome.answer, "result", outcome.usage))
        planner: Any = create_planner(kind, self.kernel, excluded=excluded, max_functions=limit)
        try:
            plan = await planner.create_plan(goal)
        finally:
            emit(Progress("planning", "planned", done=True))
        shown = str(plan)
        import uuid

        steps = [{"function": step.function, "args": step.args} for step in plan.steps]
        emit(PlanProposed(f"plan_{uuid.uuid4().hex[:12]}", shown, steps))
        if confirm is None:
            return Reply(f"{shown}\n(not run: nothing to ask for approval)", "plan")
        while True:
            answer = confirm(shown)
            if inspect.isawaitable(answer):
                answer = await answer
            if not isinstance(answer, str):
                break
            plan = edited_plan(plan, answer)
            shown = str(plan)
        if not answer:
            return Reply("Not run.", "plan")
        total = len(plan.steps)

        def on_step(event: str, number: int, step: Any, result: Any) -> None:
            if event == "started":
                emit(Progress("step", f"step {number}/{total} {step.function}"))
            else:
                seconds = f" in {result.seconds:.1f} s" if result is not None else ""
                emit(Progress("step", f"step {number}/{total} {step.function} done{seconds}", done=True))

        executor = PlanExecutor(self.kernel, catalogue=planner.catalogue, on_step=on_step)
        result = await executor.execute(plan)
        self._remember(f"(planned and ran: {goal})", result.result, title=goal)
        return self._counted(Reply(result.result, "result", planner.last_usage + result.usage))

    async def _ask(self, rest: str, emit: Callable[[Event], None] | None = None) -> Reply:
        try:
            collection, question = split_first(rest)
        except ValueError:
            return Reply("usage: /ask COLLECTION QUESTION, e.g. /ask SWOT How can we earn more?", "error")
        if emit is not None:
            emit(Progress("ask", f"searching {collection} and answering"))
        from kernel_app.base.usage import collect_usage

        # The memory plugin's own function: the same store, floor and answer form as in plans and templates.
        try:
            with collect_usage() as used:  # its model call, counted in the session's usage
                result = await self.kernel.invoke(
                    self.kernel.get_function("memory", "ask"), input=self._resolve(question), collection=collection
                )
        finally:
            if emit is not None:
                emit(Progress("ask", "answered", done=True))
        text = "" if result is None else str(result)
        self._remember(question, text, title=question)
        return self._counted(Reply(text, "answer", used.total))

    async def _save(self, rest: str, emit: Callable[[Event], None]) -> Reply:
        collection, _, what = rest.strip().partition(" ")
        if not collection:
            return Reply("usage: /save COLLECTION [text|$NAME], e.g. /save SWOT $swot (default: $last)", "error")
        text = self._resolve(what.strip() or "$last")
        if not text.strip():
            return Reply("nothing to save: give a text or $NAME", "error")
        emit(Progress("save", f"saving into {collection}"))
        try:
            saved = await self.kernel.invoke(
                self.kernel.get_function("memory", "save"), input=text, collection=collection
            )
        finally:
            emit(Progress("save", "saved", done=True))
        return Reply(f"Saved into {collection} as [{saved}]: /ask {collection} QUESTION answers from it.", "help")

    def _export(self, rest: str) -> Reply:
        from pathlib import Path

        if not rest.strip():
            return Reply("usage: /export FILE.md", "error")
        path = Path(shlex.split(rest)[0] if rest.strip()[:1] in "\"'" else rest.strip()).expanduser()
        text = conversation_markdown(self.engine.store, self.conversation_id)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            return Reply(f"cannot write {path}: {error.strerror or error}", "error")
        return Reply(f"Wrote {path} ({len(text.splitlines())} lines).", "help")

    def _history(self) -> str:
        import datetime

        conversations = self.engine.store.list(limit=20)
        if not conversations:
            return "no stored conversations yet"
        lines = []
        for number, conversation in enumerate(conversations, 1):
            when = datetime.datetime.fromtimestamp(conversation.updated_at).strftime("%Y-%m-%d %H:%M")
            mark = "*" if conversation.id == self.conversation_id else " "
            title = conversation.title or "(untitled)"
            lines.append(
                f"{mark}{number:>3}. {when}  {conversation.message_count:>4} msgs  {title}  [{conversation.id}]"
            )
        return "\n".join(lines) + "\n/resume N continues one; * is this one."

    def _resume(self, rest: str) -> Reply:
        wanted = rest.strip()
        conversations = self.engine.store.list(limit=20)
        if not wanted:
            others = [c for c in conversations if c.id != self.conversation_id and c.message_count]
            if not others:
                return Reply("no other stored conversation to resume: /history lists them", "error")
            chosen = others[0]
        elif wanted.isdigit() and 1 <= int(wanted) <= len(conversations):
            chosen = conversations[int(wanted) - 1]
        else:
            chosen = self.engine.store.get(wanted)  # ConversationNotFoundError: one line, naming the list
        self.conversation_id = chosen.id
        return Reply(f"Continuing {chosen.title or chosen.id} ({chosen.message_count} messages).", "help")

    def _set(self, rest: str) -> Reply:
        name, _, value = rest.strip().partition(" ")
        if not name:
            service = f"service {self.engine.service.service_id} ({self.engine.model})\n"
            return Reply(
                f"{service}max_tokens {self.engine.max_tokens}  (context {self.engine.context_tokens} tokens)", "help"
            )
        if name.lower() == "service" and self._services is not None:
            return self._switch_service(value.strip())
        if name.lower() not in ("max_tokens", "max-tokens"):
            return Reply(f"unknown setting {name}: one of {SETTINGS_HELP}", "error")
        value = value.strip()
        if not value.isdigit() or not 16 <= int(value) <= self.engine.context_tokens // 2:
            limit = self.engine.context_tokens // 2
            return Reply(f"max_tokens takes a number from 16 to {limit} (half the model's context)", "error")
        self.set_max_tokens(int(value))
        return Reply(f"max_tokens {self.engine.max_tokens}", "help")

    def set_max_tokens(self, tokens: int) -> None:
        """The longest answer, from now on; kept when /set service changes the model."""
        self.engine.max_tokens = tokens
        self._max_tokens_set = True

    def _switch_service(self, name: str) -> Reply:
        """The same conversation, answered from now on by another service (a bad key fails here, in one line)."""
        from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

        if not name:
            return Reply("usage: /set service local|openai|azure", "error")
        service = self._services(name)  # type: ignore[misc]
        for old in list(self.kernel.get_services_by_type(ChatCompletionClientBase).values()):
            self.kernel.remove_service(old.service_id)
        self.kernel.add_service(service)
        if not self._max_tokens_set:  # the default follows the new model's context
            self.engine.max_tokens = answer_tokens(self.engine.context_tokens)
        return Reply(f"service {name} ({self.engine.model}), max_tokens {self.engine.max_tokens}", "help")

    def _results(self) -> ResultsListing:
        return ResultsListing(tuple(Result(f"${name}", _shorten(text, 70)) for name, text in self.results.items()))

    def _resolve(self, text: str) -> str:
        """``$last`` and ``$NAME`` replaced by this session's results."""
        return resolve_results(text, self.results)

    # endregion

    async def _chat(
        self,
        text: str,
        on_chunk: Callable[[str], None] | None,
        approve: Approve | None,
        on_event: Callable[[Event], None],
    ) -> Reply:
        answer, usage, error, cut = "", Usage(), None, False
        async for event in self.engine.stream(self.conversation_id, text, approve=approve, stream=on_chunk is not None):
            on_event(event)
            if isinstance(event, TextDelta) and on_chunk is not None:
                on_chunk(event.text)
            elif isinstance(event, Done):
                answer, usage, cut = event.text, event.usage, event.finish_reason == "length"
            elif isinstance(event, ErrorEvent):
                error = event.message
        if error is not None:
            return Reply(error, "error")
        return self._counted(Reply(answer, "answer", usage, streamed=on_chunk is not None, cut=cut))

    def _remember(self, said: str, result: str, *, title: str = "") -> None:
        self.engine.remember(self.conversation_id, said, result)
        conversation = self.engine.store.get(self.conversation_id)
        if not conversation.title and title.strip():  # the first exchange names the conversation
            self.engine.store.update(self.conversation_id, title=_shorten(title, 60))

    def _counted(self, reply: Reply) -> Reply:
        if reply.usage is not None:
            self.usage = self.usage + reply.usage
        return reply


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
