"""A chat session for the REPL: free text talks to the model, slash commands run functions, plans and memory.

The core of `kernel-app chat`, kept free of terminal code so it can be driven by tests (or another
interface) line by line. Every command's outcome goes into the conversation, so "now shift that to
cleaning services" can follow a `/run BusinessThinking.SWOT a bakery`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel_app.errors import KernelAppError, innermost_message
from kernel_app.usage import Usage

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.contents import ChatHistory

SYSTEM = (
    "You are Kernel App, a concise assistant for business analysts. Answer in a few sentences, "
    "using the conversation so far (it includes the results of functions the user ran)."
)
MAX_TURNS = 8  # user+assistant pairs kept: the embedded model has a 4k-token context
MAX_RESULT_CHARS = 3000  # of a function result kept in the conversation
_VARIABLE = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)(?:\s|$)""")

HELP = """\
Type a message to talk to the model. Commands:
  /run Plugin.Function [name=value ...] [text]
                                 run a function (e.g. /run BusinessThinking.SWOT a bakery,
                                 /run Writer.Translate language=French Good morning)
  /plan GOAL                     plan the goal with the plugins, show the plan, ask, then run it
  /ask COLLECTION QUESTION       answer from saved memory, citing record ids
  /functions                     list the functions you can run
  /reset                         forget the conversation
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
    """``reply = await session.handle(line, on_chunk=print_piece, confirm=ask_user)``; never raises for bad input."""

    def __init__(self, kernel: Kernel, *, max_turns: int = MAX_TURNS, system: str = SYSTEM) -> None:
        self.kernel = kernel
        self.max_turns = max_turns
        self.system = system
        self.history = self._new_history()
        self.usage = Usage()

    def _new_history(self) -> ChatHistory:
        from semantic_kernel.contents import ChatHistory

        history = ChatHistory()
        history.add_system_message(self.system)
        return history

    async def handle(
        self,
        line: str,
        *,
        on_chunk: Callable[[str], None] | None = None,
        confirm: Confirm | None = None,
    ) -> Reply:
        line = line.strip()
        if not line:
            return Reply("", "help")
        try:
            if line.startswith("/"):
                return await self._command(line, on_chunk, confirm)
            return await self._chat(line, on_chunk)
        except KernelAppError as error:  # PlanningError, FunctionNotFoundError, store errors...
            return Reply(str(error), "error")
        except Exception as error:  # a model or plugin failure must not end the session
            return Reply(f"failed: {innermost_message(error)}", "error")

    # region commands

    async def _command(self, line: str, on_chunk: Callable[[str], None] | None, confirm: Confirm | None) -> Reply:
        name, _, rest = line.partition(" ")
        name, rest = name.lower(), rest.strip()
        if name in ("/exit", "/quit"):
            return Reply("", "exit")
        if name == "/help":
            return Reply(HELP, "help")
        if name == "/reset":
            self.history = self._new_history()
            return Reply("The conversation is forgotten.", "help")
        if name == "/functions":
            return Reply(self._functions(), "help")
        if name == "/run":
            return await self._run(rest)
        if name == "/plan":
            return await self._plan(rest, confirm)
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

    async def _plan(self, goal: str, confirm: Confirm | None) -> Reply:
        import inspect

        from planners import PlanExecutor, SequentialPlanner

        if not goal:
            return Reply("usage: /plan GOAL, e.g. /plan Write a poem about bread, then translate it to French", "error")
        planner = SequentialPlanner(self.kernel)
        plan = await planner.create_plan(goal)
        shown = str(plan)
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

    async def _chat(self, text: str, on_chunk: Callable[[str], None] | None) -> Reply:
        from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

        from kernel_app.services.execution_settings import execution_settings

        service = self.kernel.get_service(type=ChatCompletionClientBase)
        self.history.add_user_message(text)
        settings = execution_settings(service, {"max_tokens": 500})
        try:
            if on_chunk is None:
                message = await service.get_chat_message_content(self.history, settings)
                answer = "" if message is None else message.content or ""
                usage = Usage.from_metadata(getattr(message, "metadata", None))
            else:
                parts: list[str] = []
                usage = Usage()
                async for chunk in service.get_streaming_chat_message_content(self.history, settings):
                    if chunk is None:
                        continue
                    if chunk.content:
                        parts.append(str(chunk.content))
                        on_chunk(str(chunk.content))
                    usage = usage + Usage.from_metadata(getattr(chunk, "metadata", None))
                answer = "".join(parts)
        except BaseException:
            self.history.messages.pop()  # the question stays unanswered: do not keep it half-asked
            raise
        self.history.add_assistant_message(answer)
        self._trim()
        return self._counted(Reply(answer, "answer", usage, streamed=on_chunk is not None))

    def _remember(self, said: str, result: str) -> None:
        if len(result) > MAX_RESULT_CHARS:
            result = result[:MAX_RESULT_CHARS] + " [...]"
        self.history.add_user_message(said)
        self.history.add_assistant_message(result)
        self._trim()

    def _trim(self) -> None:
        """Keep the system message and the last ``max_turns`` exchanges."""
        messages = self.history.messages
        keep = 2 * self.max_turns
        if len(messages) > keep + 1:
            del messages[1 : len(messages) - keep]

    def _counted(self, reply: Reply) -> Reply:
        if reply.usage is not None:
            self.usage = self.usage + reply.usage
        return reply


def _variables_and_text(arguments: str) -> tuple[dict[str, str], str]:
    """Leading ``name=value`` words are variables (``language="Brazilian Portuguese"`` may be quoted);
    the rest, as typed, is the input text."""
    variables: dict[str, str] = {}
    rest = arguments.strip()
    while rest:
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
