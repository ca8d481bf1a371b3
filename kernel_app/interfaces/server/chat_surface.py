"""What the chat adapters (Teams, chat-copilot's web app) share over the REPL's command layer, and the
OpenAI-compatible endpoint with them (which calls run unasked).

Which of the REPL's commands a surface offers and how it refuses the others, its ``/help``, which
messages need a place at the model's queue, whether a function call is asked about or runs unasked
(``--approve-model-functions``), and how an engine reply or a failure reads there: the answer, or one
friendly sentence. Both adapters render the same :class:`kernel_app.commands.dispatch.ChatSession` replies,
so they word them the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel_app.conversation.engine import Refusal
from kernel_app.interfaces.server.markdown import help_markdown, inline, listing_markdown

if TYPE_CHECKING:
    from kernel_app.commands.dispatch import Reply
    from kernel_app.commands.listing import HelpListing
    from kernel_app.conversation.events import ApprovalNeeded

log = logging.getLogger("kernel_app.interfaces.server")
APPROVE_FLAG = "--approve-model-functions"
MAX_ERROR_CHARS = 300
CUT_NOTE = "\n(cut: the answer reached its length limit)"
# The REPL's commands that call the model (or may: /run of a prompt function). Free text does too. Every
# other command answers from what the server holds (/help, /functions, /results, /reset...), or is
# refused, so it never waits for, nor takes, a place at the model's queue.
MODEL_COMMANDS = frozenset({"/run", "/plan", "/ask", "/save"})
# A call approved after a restart: the turn that asked is gone (the engine keeps a turn's messages in
# memory until it ends), so the call runs on its own and its result is the answer.
AFTER_RESTART = (
    "The server restarted while {function} waited for your approval, so I could not go on with that answer. "
    "I ran {function} as you approved. Its result:\n\n{result}\n\nAsk again or say how to go on: I will "
    "continue from it."
)
FAILED_AFTER_RESTART = (
    "The server restarted while {function} waited for your approval, so I could not go on with that answer. "
    "I ran {function} as you approved, but it failed: {error}"
)


def command_of(text: str) -> str:
    """The command a message starts with (``/run``, lower case), or "" for free text."""
    text = text.strip()
    return text.split(None, 1)[0].lower() if text.startswith("/") else ""


@dataclass(frozen=True)
class Offered:
    """The REPL's commands a surface offers, and what it says to the others.

    ``unavailable`` is formatted with ``command``; ``no_vars`` answers ``/run --vars`` (it reads a file
    on the server)."""

    commands: frozenset[str]
    unavailable: str
    no_vars: str

    def refusal(self, text: str) -> str | None:
        """Why this surface does not run ``text``, in one sentence; None when it does."""
        command = command_of(text)
        if command and command not in self.commands:
            return self.unavailable.format(command=command)
        if command == "/run" and "--vars" in text.split():
            return self.no_vars
        return None

    def help(self, listing: HelpListing) -> str:
        """``/help`` here: the listing's commands this surface offers, as a markdown list."""
        return help_markdown(listing.offered(self.commands))


def uses_model(text: str) -> bool:
    """Whether a message needs a place at the model's queue: free text and :data:`MODEL_COMMANDS` do."""
    command = command_of(text)
    return not command or command in MODEL_COMMANDS


def runs_unasked(state: Any, effect: str) -> bool:
    """Whether a call the engine would ask about runs without asking the user: a prompt function's (effect
    ``model``: it costs tokens, changes nothing outside) when the server was started with
    ``--approve-model-functions`` (``state.approve_model_functions``). A WRITE function is always asked."""
    return bool(getattr(state, "approve_model_functions", False)) and effect == "model"


def needs_approval(state: Any, name: str) -> bool:
    """Whether the user is asked before ``Plugin.Function`` runs: the engine's rule (MODEL and WRITE ask),
    less what :func:`runs_unasked`. The engine's FunctionCallStarted comes before the approval, so a
    surface says "Running" at once when this is False, and only after the decision when it is True."""
    from kernel_app.base.effects import effect_of

    plugin, _, function_name = name.partition(".")
    try:
        function = state.kernel.get_function(plugin, function_name)
        return bool(state.engine.approval_rule(function)) and not runs_unasked(state, effect_of(function).value)
    except Exception:
        return False


AskUser = Callable[["ApprovalNeeded"], Awaitable["bool | Refusal"]]


def approver(state: Any, ask: AskUser) -> AskUser:
    """The engine's ``approve`` callback for a surface: the server's rule first (:func:`runs_unasked`), then
    the surface's own way of asking its user (a card, a plan message) for the rest, or of refusing it
    where no one can be asked (the OpenAI-compatible endpoint)."""

    async def approve(request: ApprovalNeeded) -> bool | Refusal:
        if runs_unasked(state, request.effect):
            return True
        return await ask(request)

    return approve


async def refusal(request: ApprovalNeeded) -> Refusal:
    """The OpenAI-compatible endpoints' approval (chat completions and responses, model ``kernel-app``).

    An OpenAI client cannot answer an approval: what the chat surfaces would ask about is refused here
    (:func:`kernel_app.interfaces.server.chat_surface.approver` runs prompt functions first under
    ``--approve-model-functions``, as on Teams and chat-copilot). A refusal names the way out, to the model
    (which tells the client) and in the server's log."""
    if request.effect == "model":
        log.warning(
            "%s not run for model kernel-app: it is a prompt function; start the server with %s to allow them",
            request.function,
            APPROVE_FLAG,
        )
        return Refusal(
            f"{request.function} was not run: this server runs prompt functions for model kernel-app only "
            f"when started with {APPROVE_FLAG}. Say so, then answer without it."
        )
    log.warning("%s not run for model kernel-app: it has an effect, which needs a person's approval", request.function)
    return Refusal(
        f"{request.function} was not run: it changes something, and over the OpenAI-compatible API no one can "
        "approve that (use the REST conversations API, which asks). Answer without it."
    )


def sorry(text: str) -> str:
    """An error as one friendly sentence: its first line, not too long, safe as markdown (the surfaces
    render it so: ``max_tokens`` must not turn into italics)."""
    first = (text.strip().splitlines() or ["that did not work"])[0]
    if len(first) > MAX_ERROR_CHARS:
        first = first[: MAX_ERROR_CHARS - 1] + "…"
    return f"Sorry, that did not work: {inline(first)}"


def reply_text(reply: Reply) -> str:
    """What the user reads of a ChatSession reply: the answer, or an error as one friendly sentence."""
    if reply.kind == "error":
        return sorry(reply.text)
    if reply.kind == "exit":
        return "There is nothing to leave here: just stop writing, or /reset to start over."
    if reply.kind == "plan" and reply.text == "Not run.":  # a /plan the user rejected
        return "Plan cancelled: nothing ran."
    if reply.listing is not None:  # /help, /functions, /results: the terminal's columns run together here
        return listing_markdown(reply.listing)
    text = reply.text or "(no answer)"
    return text + CUT_NOTE if reply.cut else text


def sentence(text: str) -> str:
    """A Progress line as a status: "running Math.add" -> "Running Math.add…"."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "…"


def busy_text(retry_after: int) -> str:
    return f"Sorry, I am busy with other questions: try again in {retry_after} seconds."


def too_long_text(seconds: float) -> str:
    return f"Sorry, that took longer than {seconds:g} seconds and was stopped."


def stalled_text(seconds: float) -> str:
    """A turn stopped by its deadline, which progress restarts (``limits.gated``, ``limits.StallWatch``)."""
    return f"Sorry, that made no progress for {seconds:g} seconds and was stopped."


async def acquire_waiting(gate: Any) -> None:
    """A place at the model's queue for approved work: it waits its turn rather than fail on a full queue."""
    from kernel_app.interfaces.server.limits import Busy

    while True:
        try:
            await gate.acquire()
            return
        except Busy as busy:
            await asyncio.sleep(min(busy.retry_after, 1))


def failure(error: BaseException) -> str:
    """An error as the REPL's command layer words it (our errors as they are, others as "failed: ...")."""
    from kernel_app.base.errors import KernelAppError, innermost_message

    return str(error) if isinstance(error, KernelAppError) else f"failed: {innermost_message(error)}"


# region after a restart


async def run_approved_call(state: Any, function: str, arguments: dict[str, Any]) -> tuple[str, str, bool]:
    """A call approved after a restart, run once at its turn of the model's queue (a prompt function calls
    the model): its output (or why it failed), the answer that says so (:data:`AFTER_RESTART`), and
    whether it ran."""
    from semantic_kernel.functions import KernelArguments

    from kernel_app.conversation.engine import result_text

    plugin, _, name = function.partition(".")
    ok = False
    await acquire_waiting(state.gate)
    try:
        result = await state.kernel.invoke(state.kernel.get_function(plugin, name), KernelArguments(**arguments))
        output, ok = result_text(result), True
    except Exception as error:
        output = failure(error)
    finally:
        state.gate.release()
    if ok:
        return output, AFTER_RESTART.format(function=function, result=output or "(no result)"), True
    error = sorry(output).removeprefix("Sorry, that did not work: ")  # its first line, not too long
    return output, FAILED_AFTER_RESTART.format(function=function, error=error), False


def remember_call(
    state: Any, conversation_id: str, said: str, call: tuple[str, str, dict[str, Any]], output: str, text: str
) -> None:
    """The question, the call (its id, ``Plugin.Function``, arguments), its result and the answer join the
    conversation as a turn of the engine's, so the next message continues from them."""
    from kernel_app.conversation.store import Message, ToolCall

    store = state.engine.store
    if not store.exists(conversation_id):
        return
    call_id, function, arguments = call
    store.append_many(
        conversation_id,
        [
            Message("user", said),
            Message("assistant", "", tool_calls=(ToolCall(call_id, function, dict(arguments)),)),
            Message("tool", output, name=function, call_id=call_id),
            Message("assistant", text),
        ],
    )


def remember_plan(state: Any, conversation_id: str, goal: str, result: str) -> None:
    """As the REPL's /plan does: a plan run after its approval joins the conversation (and names it)."""
    engine = state.engine
    if engine.store.exists(conversation_id):
        engine.remember(conversation_id, f"(planned and ran: {goal})", result)
        if not engine.store.get(conversation_id).title:
            engine.store.update(conversation_id, title=goal[:60])


# endregion
