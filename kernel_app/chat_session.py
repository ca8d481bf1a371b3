"""A chat session for the REPL: free text talks to the model, slash commands run functions, plans and memory.

The REPL's command layer over the conversation engine (:mod:`kernel_app.conversation`), kept free of
terminal code so it can be driven by tests (or another interface) line by line. Free text is one
engine turn (with function calling where the service supports it); every command's outcome also
goes into the stored conversation, so "now shift that to cleaning services" can follow a
`/run BusinessThinking.SWOT a bakery`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel_app.conversation.engine import SYSTEM, Approve, ConversationEngine
from kernel_app.conversation.events import Done, ErrorEvent, Event, PlanProposed, TextDelta
from kernel_app.errors import KernelAppError, innermost_message
from kernel_app.usage import Usage

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.contents import ChatHistory

    from kernel_app.conversation.store import ConversationStore

_VARIABLE = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)(?:\s|$)""")

HELP = """\
Type a message to talk to the model. Commands:
  /run Plugin.Function [name=value ...] [--var-json NAME='JSON'] [--vars FILE] [text]
                                 run a function (e.g. /run BusinessThinking.SWOT a bakery,
                                 /run Writer.Translate language=French Good morning)
  /plan GOAL                     plan the goal with the plugins, show the plan, ask, then run it
  /ask COLLECTION QUESTION       answer from saved memory, citing record ids
  /functions                     list the functions you can run
  /reset                         start a new conversation (the old one stays in the store)
  /help                          this text
  /exit                          leave (or Ctrl-D)"""

Confirm = Callable[[str], "bool | Awaitable[bool]"]


@dataclass
class Reply:
    """What the session says back. ``kind``: answer, result, plan, help, error or exit."""

    text: str
    kind: str = "answer"
    usage: Usage | None = None
    streamed: bool = False  # the text already went to on_chunk

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
        store: ConversationStore | None = None,
        conversation_id: str | None = None,
        engine: ConversationEngine | None = None,
    ) -> None:
        self.kernel = kernel
        self.system = system
        self.engine = engine or ConversationEngine(kernel, store, system=system, max_turns=max_turns)
        if conversation_id is not None:
            self.engine.store.get(conversation_id)  # ConversationNotFoundError names the list command
        self.conversation_id = conversation_id or self.engine.create().id
        self.usage = Usage()

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
    ) -> Reply:
        """``confirm`` approves a /plan; ``approve`` a function with an effect the model wants to call
        (None: refused); ``on_event`` sees every engine event (function calls, approvals) of free text."""
        line = line.strip()
        if not line:
            return Reply("", "help")
        try:
            if line.startswith("/"):
                return await self._command(line, on_chunk, confirm, on_event)
            return await self._chat(line, on_chunk, approve, on_event)
        except KernelAppError as error:  # PlanningError, FunctionNotFoundError, store errors...
            return Reply(str(error), "error")
        except Exception as error:  # a model or plugin failure must not end the session
            return Reply(f"failed: {innermost_message(error)}", "error")

    # region commands

    async def _command(
        self,
        line: str,
        on_chunk: Callable[[str], None] | None,
        confirm: Confirm | None,
        on_event: Callable[[Event], None] | None = None,
    ) -> Reply:
        name, _, rest = line.partition(" ")
        name, rest = name.lower(), rest.strip()
        if name in ("/exit", "/quit"):
            return Reply("", "exit")
        if name == "/help":
            return Reply(HELP, "help")
        if name == "/reset":
            self.conversation_id = self.engine.create().id
            return Reply("A new conversation: the model no longer sees the old one.", "help")
        if name == "/functions":
            return Reply(self._functions(), "help")
        if name == "/run":
            return await self._run(rest)
        if name == "/plan":
            return await self._plan(rest, confirm, on_event)
        if name == "/ask":
            return await self._ask(rest)
        return Reply(f"unknown command {name}: type /help for the commands", "error")

    def _functions(self) -> str:
        lines = []
        for metadata in sorted(
            self.kernel.get_full_list_of_function_metadata(), key=lambda m: (m.plugin_name or "", m.name)
        ):
            about = (metadata.description or "").strip().splitlines()[0:1]
            lines.append(f"  {metadata.plugin_name}.{metadata.name}  {about[0] if about else ''}".rstrip())
        return "\n".join(lines)

    async def _run(self, rest: str) -> Reply:
        from kernel_app.errors import MissingVariableError
        from kernel_app.runner import resolve_function, run_chain

        name, _, arguments = rest.partition(" ")
        if not name:
            return Reply("usage: /run Plugin.Function [name=value ...] [text], e.g. /run Math.add a=2 b=3", "error")
        function = resolve_function(self.kernel, name)
        variables, text = _variables_and_text(arguments)
        try:
            result = await run_chain(self.kernel, [function], input=text or None, variables=variables)
        except MissingVariableError as missing:  # its message names the CLI's --var; say it the REPL's way
            hint = "add the text after the name" if missing.variable == "input" else f"add {missing.variable}=VALUE"
            return Reply(f"{missing.function} needs '{missing.variable}': {hint}", "error")
        self._remember(f"(ran {name} on: {text or 'no input'})", result.result)
        return self._counted(Reply(result.result, "result", result.usage))

    async def _plan(self, goal: str, confirm: Confirm | None, on_event: Callable[[Event], None] | None = None) -> Reply:
        import inspect

        from planners import PlanExecutor, SequentialPlanner

        if not goal:
            return Reply("usage: /plan GOAL, e.g. /plan Write a poem about bread, then translate it to French", "error")
        planner = SequentialPlanner(self.kernel)
        plan = await planner.create_plan(goal)
        shown = str(plan)
        if on_event is not None:
            import uuid

            steps = [{"function": step.function, "args": step.args} for step in plan.steps]
            on_event(PlanProposed(f"plan_{uuid.uuid4().hex[:12]}", shown, steps))
        if confirm is None:
            return Reply(f"{shown}\n(not run: nothing to ask for approval)", "plan")
        answer = confirm(shown)
        if inspect.isawaitable(answer):
            answer = await answer
        if not answer:
            return Reply("Not run.", "plan")
        result = await PlanExecutor(self.kernel, catalogue=planner.catalogue).execute(plan)
        self._remember(f"(planned and ran: {goal})", result.result)
        return self._counted(Reply(result.result, "result", planner.last_usage + result.usage))

    async def _ask(self, rest: str) -> Reply:
        try:
            collection, question = _split_first(rest)
        except ValueError:
            return Reply("usage: /ask COLLECTION QUESTION, e.g. /ask SWOT How can we earn more?", "error")
        # The memory plugin's own function: the same store, floor and answer form as in plans and templates.
        result = await self.kernel.invoke(
            self.kernel.get_function("memory", "ask"), input=question, collection=collection
        )
        text = "" if result is None else str(result)
        self._remember(question, text)
        return Reply(text, "answer")

    # endregion

    async def _chat(
        self,
        text: str,
        on_chunk: Callable[[str], None] | None,
        approve: Approve | None,
        on_event: Callable[[Event], None] | None,
    ) -> Reply:
        answer, usage, error = "", Usage(), None
        async for event in self.engine.stream(self.conversation_id, text, approve=approve, stream=on_chunk is not None):
            if on_event is not None:
                on_event(event)
            if isinstance(event, TextDelta) and on_chunk is not None:
                on_chunk(event.text)
            elif isinstance(event, Done):
                answer, usage = event.text, event.usage
                if event.finish_reason == "length":
                    answer += "\n(cut: the answer reached its length limit)"
            elif isinstance(event, ErrorEvent):
                error = event.message
        if error is not None:
            return Reply(error, "error")
        return self._counted(Reply(answer, "answer", usage, streamed=on_chunk is not None))

    def _remember(self, said: str, result: str) -> None:
        self.engine.remember(self.conversation_id, said, result)

    def _counted(self, reply: Reply) -> Reply:
        if reply.usage is not None:
            self.usage = self.usage + reply.usage
        return reply


def _variables_and_text(arguments: str) -> tuple[dict[str, object], str]:
    """Leading ``name=value`` words are variables (``language="Brazilian Portuguese"`` may be quoted),
    and so are ``--var-json NAME='JSON'`` and ``--vars FILE``, as on the command line; the rest, as typed,
    is the input text."""
    from pathlib import Path

    from kernel_app.plugin_folders.structured_vars import load_vars_file, parse_json_vars, to_kernel_value

    variables: dict[str, object] = {}
    rest = arguments.strip()
    while rest:
        flag = rest.split(None, 1)[0]
        if flag in ("--var-json", "--vars"):
            lexer = shlex.shlex(rest[len(flag) :], posix=True)
            lexer.whitespace_split = True
            value = lexer.get_token() or ""
            found = parse_json_vars([value]) if flag == "--var-json" else load_vars_file(Path(value).expanduser())
            variables.update({name: to_kernel_value(v) for name, v in found.items()})
            rest = lexer.instream.read().lstrip()
            continue
        match = _VARIABLE.match(rest)
        if match is None:
            break
        value = match.group(2)
        variables[match.group(1)] = shlex.split(value)[0] if value[:1] in "\"'" else value
        rest = rest[match.end() :].lstrip()
    return variables, rest


def _split_first(text: str) -> tuple[str, str]:
    """``COLLECTION rest of the question`` (the collection may be quoted)."""
    parts = shlex.split(text) if text.startswith(('"', "'")) else text.split(None, 1)
    if len(parts) < 2 or not parts[0] or not " ".join(parts[1:]).strip():
        raise ValueError(text)
    return parts[0], " ".join(parts[1:]).strip()
