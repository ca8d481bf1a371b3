"""The conversation engine: one loop that every surface (REPL, HTTP, OpenAI-compatible, later Teams) drives.

``async for event in engine.stream(conversation_id, text, approve=ask): render(event)``

A turn: the user's message, then rounds of model calls. When the service can call functions the
model is offered the kernel's functions on an allow-list (never an empty one: semantic-kernel would
then offer everything) and asks for calls; the engine runs them itself, one by one, so that each
call is an event and each one with an effect waits for the surface's approval
(:func:`kernel_app.base.effects.needs_approval`: only READ functions run unasked; no callback = deny).
After ``max_rounds`` rounds the model answers without tools. A call is checked before it runs
(:mod:`kernel_app.conversation.calls`: a missing required argument is explained to the model, which
retries in the next round), and the result of a function marked ``result_is_answer`` (the SWOT's tables),
when it is the last call of a round, is the turn's answer as it is; streamed, the parts it sends while
it runs are text events as they come (:mod:`kernel_app.conversation.answer_parts`). The turn is stored
when it is done (one transaction: question, calls, results, answer); a call with an effect that was approved and ran is
stored at once, so the record of what was done survives a failure later in the turn. A turn that
fails leaves nothing else, so the unanswered question does not come back; so does one that is cancelled
(the REPL's Ctrl-C), unless its surface asks to keep it (``keep_if_cut``: a client that disconnected):
then what it produced is stored, marked interrupted (:mod:`kernel_app.conversation.interrupted`).

The prompt is the system message plus the newest stored messages that fit the model's context
(:mod:`kernel_app.conversation.history`); older messages stay in the store.

Content safety (docs/content-safety.md): the kernel's screen checks the user's message before anything
runs (blocked: a ``ContentBlocked`` event, then ``Done`` with ``finish_reason`` ``content_filter`` and
nothing stored), each function's result before the model sees it (the memory plugin drops flagged
records itself and reports them), and the answer. What memory recall returns goes into the prompt fenced
as data with a boundary made for the turn, under a system line that says it is not instructions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from kernel_app.base import telemetry
from kernel_app.base.errors import KernelAppError, innermost_message
from kernel_app.base.usage import Usage, collect_usage
from kernel_app.conversation.answer_parts import AnswerParts
from kernel_app.conversation.events import (
    ApprovalNeeded,
    ContentBlocked,
    Done,
    ErrorEvent,
    Event,
    FunctionCallFinished,
    FunctionCallStarted,
    TextDelta,
)
from kernel_app.conversation.history import context_tokens_for, estimate_tokens, fit, message_tokens
from kernel_app.conversation.off_loop import kept_off_the_loop, off_the_loop
from kernel_app.conversation.store import (
    LOCAL_OWNER,
    AnyConversationStore,
    Conversation,
    ConversationNotFoundError,
    ConversationStore,
    Message,
    ToolCall,
)
from kernel_app.providers.call_log.context import scoped_stream
from kernel_app.providers.content_safety import Screen, Stage, collect_blocks, data_rule, fence, new_boundary
from kernel_app.providers.content_safety import refusal as refusal_text
from kernel_app.providers.llama.profiles import GENERIC, ModelProfile

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.contents import ChatHistory

SYSTEM = (
    "You are Kernel App, a concise assistant for business analysts. Answer in a few sentences, "
    "using the conversation so far (it includes the results of functions the user ran). When one of "
    "your tools does what is asked, call it, then answer from its result."
)
DEFAULT_MAX_TOKENS = 500  # of one answer
DEFAULT_MAX_ROUNDS = 5  # model round trips that may call functions, per turn
SUMMARY_CHARS = 200  # of a function result, in FunctionCallFinished
TITLE_CHARS = 60
TOOL_SCHEMA_TOKENS = 60  # estimated per offered function, reserved from the context
# A small model says how many functions it handles (planner_max_functions: the embedded tiers do); then each
# turn offers the ones most relevant to the user's message. Every schema of the kernel (~47 functions, ~4,000
# tokens) would overflow its context. A service that says nothing (OpenAI, Azure) is offered all.
NO_LIMIT = 10**6
# Functions whose results are retrieved text (saved notes, documents, web pages): fenced as data in the prompt.
DATA_PLUGINS = ("http",)
DATA_FUNCTIONS = ("memory.recall",)

Approve = Callable[[ApprovalNeeded], "bool | Refusal | Awaitable[bool | Refusal]"]
ApprovalRule = Callable[[Any], bool]


@dataclass
class TurnResult:
    """What :meth:`ConversationEngine.send` collects from a turn's events."""

    text: str = ""
    usage: Usage = field(default_factory=Usage)
    events: list[Event] = field(default_factory=list)
    error: str | None = None
    finish_reason: str = "stop"

    @property
    def calls(self) -> list[FunctionCallFinished]:
        return [e for e in self.events if isinstance(e, FunctionCallFinished)]


def _default_rule(function: Any) -> bool:
    from kernel_app.base.effects import needs_approval

    return needs_approval(function)


class ConversationEngine:
    """Conversations over one kernel and store. Safe to share between concurrent conversations."""

    def __init__(
        self,
        kernel: Kernel,
        store: AnyConversationStore | None = None,
        *,
        functions: Iterable[str] | None = None,
        system: str = SYSTEM,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        context_tokens: int | None = None,
        max_turns: int | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        service_id: str | None = None,
        approval_rule: ApprovalRule = _default_rule,
        max_functions: int | None = None,
        relevance: Any = None,
        screen: Screen | Literal["kernel"] | None = "kernel",
    ) -> None:
        """``functions``: the allow-list as ``Plugin.Function`` names (None: every function the kernel can
        offer as a tool; empty: none). ``context_tokens``: the model's context window (None: known from the
        model's name, else 8192). ``max_turns`` also caps the user turns kept in the prompt. ``relevance``:
        how functions are ranked for a turn when not all are offered (a ``planners.relevance.Relevance``;
        None: by meaning, :class:`kernel_app.conversation.offer.SemanticRelevance`). ``screen``: the content
        screen ("kernel": the kernel's own, from the ``content_safety`` setting; None: none)."""
        self.kernel = kernel
        self.store = store if store is not None else ConversationStore(":memory:")
        self.system = system
        self.max_tokens = max_tokens
        self.max_turns = max_turns
        self.max_rounds = max_rounds
        self.service_id = service_id
        self.approval_rule = approval_rule
        self._functions = None if functions is None else [f.replace("-", ".", 1) for f in functions]
        self.max_functions = max_functions  # per turn; None: the service's planner_max_functions, else all
        self._context_tokens = context_tokens
        self._relevance = relevance
        self._screen = screen
        self._allowed: list[str] = []
        self._allowed_key: tuple[tuple[str, int], ...] | None = None
        self._service: Any = None
        self._service_key: tuple[Any, ...] | None = None

    # region conversations

    @property
    def service(self) -> ChatCompletionClientBase:
        # Asked several times a turn; semantic-kernel's lookup filters every service by type each time. Looked
        # up again when the kernel's services change (the REPL's /set service replaces one).
        key = (self.service_id, *map(id, self.kernel.services.values()))
        if key != self._service_key:
            from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

            self._service = self.kernel.get_service(self.service_id, type=ChatCompletionClientBase)
            self._service_key = key
        return self._service

    @property
    def screen(self) -> Screen | None:
        if isinstance(self._screen, str):  # "kernel"
            from kernel_app.kernel.screening import screen_of

            return screen_of(self.kernel)
        return self._screen

    @property
    def model(self) -> str:
        return str(getattr(self.service, "ai_model_id", "") or "")

    @property
    def context_tokens(self) -> int:
        """Given, else the service's own context (the embedded model's ``n_ctx``), else known by model name."""
        if self._context_tokens:
            return self._context_tokens
        service = self.service
        window = getattr(service, "n_ctx", None)
        if isinstance(window, int) and window > 0:
            return window
        return context_tokens_for(str(getattr(service, "ai_model_id", "") or ""))

    def create(self, *, title: str = "", id: str | None = None, owner: str = LOCAL_OWNER) -> Conversation:
        """A new conversation of ``owner``: the principal of whoever asked (the interface knows who; the
        engine only keeps the string)."""
        service = self.service
        return self.store.create(
            title=title,
            service=str(service.service_id or ""),
            model=str(service.ai_model_id or ""),
            id=id,
            owner=owner,
        )

    def remember(self, conversation_id: str, said: str, result: str) -> None:
        """Put a command's outcome into the conversation (``/run`` and ``/plan`` results in the REPL)."""
        self.store.append_many(conversation_id, [Message("user", said), Message("assistant", result)])

    def prompt_messages(self, conversation_id: str, *, pending: Sequence[Message] = ()) -> list[Message]:
        """The stored messages (and this turn's ``pending`` ones) that fit the model's context, oldest first."""
        messages = [*self.store.messages(conversation_id), *pending]
        return fit(messages, self._history_budget(), max_turns=self.max_turns)

    def chat_history(self, messages: Sequence[Message], *, boundary: str = "") -> ChatHistory:
        """A semantic-kernel ChatHistory: the system message, then ``messages``. With a ``boundary``, the
        results of functions that retrieve text are fenced as data, and a system line says so."""
        from semantic_kernel.contents import (
            ChatHistory,
            ChatMessageContent,
            FunctionCallContent,
            FunctionResultContent,
            TextContent,
        )
        from semantic_kernel.contents.utils.author_role import AuthorRole

        history = ChatHistory()
        if self.system:
            history.add_system_message(self.system)
        fenced = bool(boundary) and any(m.role == "tool" and is_data_function(m.name or "") for m in messages)
        if fenced:
            history.add_system_message(data_rule(boundary))
        limit = max(200, int(self._history_budget() / 4 * 3.5))  # one function result gets a quarter at most
        for message in messages:
            if message.role == "tool":
                plugin, _, name = (message.name or "").partition(".")
                content = message.content if len(message.content) <= limit else message.content[:limit] + " [...]"
                if fenced and is_data_function(message.name or ""):
                    content = fence(content, boundary)
                result = FunctionResultContent(
                    id=message.call_id, plugin_name=plugin or None, function_name=name or plugin, result=content
                )
                history.add_message(ChatMessageContent(role=AuthorRole.TOOL, items=[result]))
            elif message.role == "assistant" and message.tool_calls:
                items: list[Any] = [TextContent(text=message.content)] if message.content else []
                for call in message.tool_calls:
                    plugin, _, name = call.function.partition(".")
                    items.append(
                        FunctionCallContent(
                            id=call.id, plugin_name=plugin, function_name=name, arguments=json.dumps(call.arguments)
                        )
                    )
                history.add_message(ChatMessageContent(role=AuthorRole.ASSISTANT, items=items))
            elif message.role == "assistant":
                history.add_assistant_message(message.content)
            elif message.role == "system":
                history.add_system_message(message.content)
            else:
                history.add_user_message(message.content)
        return history

    def _history_budget(self) -> int:
        offered = min(len(self.allowed_functions()), self.offer_limit())
        tools = offered * TOOL_SCHEMA_TOKENS if self._offers_tools() else 0
        budget = int(self.context_tokens * 0.9) - self.max_tokens - estimate_tokens(self.system) - tools
        return max(budget, 256)

    # endregion

    # region functions

    def allowed_functions(self) -> list[str]:
        """``Plugin.Function`` names the model may call: the allow-list, less what cannot be a tool."""
        # Asked several times a turn; walking every function's metadata was ~0.5 ms of a served request.
        # Recomputed when a plugin is added or gains or loses functions (the REPL can load more).
        key = tuple((name, len(plugin.functions)) for name, plugin in self.kernel.plugins.items())
        if key != self._allowed_key:
            available: set[str] = set()
            for metadata in self.kernel.get_full_list_of_function_metadata():
                injected = any(
                    (p.name == "kernel" or p.type_ in ("Kernel", "KernelArguments")) and p.include_in_function_choices
                    for p in metadata.parameters
                )
                if not injected:  # a tool schema cannot ask the model for the kernel itself
                    available.add(f"{metadata.plugin_name}.{metadata.name}")
            if self._functions is None:
                self._allowed = sorted(available)
            else:
                self._allowed = [name for name in self._functions if name in available]
            self._allowed_key = key
        return list(self._allowed)

    def offer_limit(self) -> int:
        """How many functions a turn offers at most."""
        if self.max_functions:
            return self.max_functions
        try:
            return int(getattr(self.service, "planner_max_functions", None) or NO_LIMIT)
        except Exception:
            return NO_LIMIT

    async def offered_functions(self, text: str) -> list[str]:
        """The allowed functions offered for a turn: all that fit the limit, else the most relevant to ``text``."""
        names = self.allowed_functions()
        limit = self.offer_limit()
        if len(names) <= limit:
            return names
        from planners.catalogue import FunctionCatalogue
        from planners.relevance import most_relevant

        if self._relevance is None:
            from kernel_app.conversation.offer import SemanticRelevance

            self._relevance = SemanticRelevance()
        catalogue = FunctionCatalogue.from_kernel(self.kernel, included=names)
        return await most_relevant(text, catalogue, limit, self._relevance)

    def _offers_tools(self) -> bool:
        try:
            supports = bool(self.service.SUPPORTS_FUNCTION_CALLING)
        except Exception:
            return False
        return supports and bool(self.allowed_functions())

    # endregion

    # region turns

    async def send(self, conversation_id: str, text: str, *, approve: Approve | None = None) -> TurnResult:
        """One turn, not streamed; collects the events."""
        return await collect(self.stream(conversation_id, text, approve=approve, stream=False))

    async def stream(
        self,
        conversation_id: str,
        text: str,
        *,
        approve: Approve | None = None,
        stream: bool = True,
        keep_if_cut: bool = False,
        conversation: Conversation | None = None,
        options: dict[str, Any] | None = None,
        instructions: Sequence[str] = (),
        owner: str | None = None,
    ) -> AsyncIterator[Event]:
        """One turn of a stored conversation; ends with ``Done`` (after the turn is stored) or ``ErrorEvent``.

        ``keep_if_cut``: should the turn be cancelled or closed before it ends (its client disconnected),
        store what it produced, the text streamed so far included, marked interrupted; else it leaves
        nothing but the calls with an effect that ran. ``conversation``: the caller read it from the store
        already (the server does, to answer 404 before a stream starts; checked against ``owner`` here).
        ``options``: execution settings for this turn (``max_tokens``, ``temperature``...).
        ``instructions``: system messages for this turn only, after the engine's own; they are not stored
        (the Responses API's ``instructions`` do not carry over to the next response). ``owner``: only that
        principal's conversation may be continued (another's is not found); None: anyone's.

        The store is asked twice a turn without function calls: ``start_turn`` (the conversation, its
        owner, its messages, the turn recorded as in progress) and ``finish_turn`` (the turn's messages
        stored, the in-progress mark gone). On PostgreSQL each is one round trip
        (``tests/conversation/test_turn_round_trips.py`` counts them), run in a thread so that the event
        loop serves other turns meanwhile (:mod:`kernel_app.conversation.off_loop`); so are a round's
        calls with an effect, stored mid-turn. Only a turn cut by its client ends its record on the loop
        (no await may run while it is cancelled)."""
        if conversation is not None and owner is not None and conversation.owner != owner:
            raise ConversationNotFoundError(f"no conversation {conversation_id!r}")
        # ConversationNotFoundError before anything runs. On PostgreSQL the turn is recorded while it runs:
        # if this process dies mid-turn, another instance marks it interrupted in the conversation
        # (PgConversationStore.mark_interrupted_turns).
        started = await kept_off_the_loop(
            self.store,
            functools.partial(self.store.start_turn, conversation_id, text, owner=owner),
            if_cancelled=lambda turn: self.store.end_turn(turn.id),  # recorded, but nobody runs it
        )
        finishing = False  # finish_turn was called: it ends the turn's record, whatever becomes of it
        cut = False  # cancelled or closed: the turn's record is ended without an await
        storing = threading.Lock()  # a mid-turn commit in its thread, and a cut that stores what is left
        try:
            blocked = await self._screen_or_error("input", text)
            if blocked is not None:  # nothing is stored: the blocked message must not reach a later prompt
                for event in _blocked_turn(blocked, conversation_id):
                    yield event
                return
            untitled = not started.conversation.title
            history = started.messages  # read once: the turn's own messages are in ``pending``
            pending = [Message("user", text)]
            committed = 0
            ended = False  # Done or ErrorEvent came: the turn is over, whatever happens to its consumer now
            streamed: list[str] = []  # the text of the round in progress (not in ``pending`` yet)
            seen = len(pending)

            def commit() -> None:  # a round's calls with an effect, mid-turn (in a thread on PostgreSQL)
                nonlocal committed
                with storing:
                    self.store.append_many(conversation_id, pending[committed:])
                    committed = len(pending)

            def finish(messages: list[Message]) -> None:
                # In a thread at Done: should the turn be cancelled before the thread starts it, ``finishing``
                # stays False, and the turn's record is ended below instead.
                nonlocal committed, finishing
                finishing = True
                title = _title(text) if untitled else None
                self.store.finish_turn(started.id, conversation_id, messages, title=title)
                committed = len(pending)

            preamble = [Message("system", line) for line in instructions]
            events = self._turn(
                lambda: [*preamble, *fit([*history, *pending], self._history_budget(), max_turns=self.max_turns)],
                pending,
                commit,
                approve=approve,
                stream=stream,
                options=options,
                conversation_id=conversation_id,
            )
            try:
                # The call log learns which conversation each model call of the turn belongs to.
                async for event in scoped_stream(events, conversation=conversation_id):
                    if len(pending) != seen:  # a round's message was added: its text is in it
                        seen, streamed = len(pending), []
                    if isinstance(event, TextDelta):
                        streamed.append(event.text)
                    if isinstance(event, Done):
                        # The commit runs on in its thread if the turn is cancelled while it waits: the turn
                        # is whole then, so a cut must not store its messages a second time.
                        ended = True
                        await self._off_the_loop(functools.partial(finish, pending[committed:]))
                        event = Done(conversation_id, event.text, event.usage, event.finish_reason)
                    ended = ended or isinstance(event, (Done, ErrorEvent))
                    yield event
            except (asyncio.CancelledError, GeneratorExit):
                # Cancelled while it awaited (the model, an approval), or closed at a yield by a consumer that
                # stopped reading: either way the client is gone. Store calls only: no await may run here.
                cut = True
                if keep_if_cut and not ended:
                    from kernel_app.conversation.interrupted import cut_ending

                    # After a mid-turn commit still running in its thread, if any: what it stored is not
                    # stored twice.
                    with storing, contextlib.suppress(Exception):  # the database away: the row marks it later
                        finish(cut_ending(pending[committed:], "".join(streamed)))
                raise
        except (asyncio.CancelledError, GeneratorExit):  # cut while it screened the user's message
            cut = True
            raise
        finally:
            if not finishing:
                with contextlib.suppress(Exception):  # the database away: the row expires; the turn is found ended
                    if cut:
                        self.store.end_turn(started.id)
                    else:  # blocked, or failed: it ended as any turn does
                        await off_the_loop(self.store, self.store.end_turn, started.id)

    async def _off_the_loop(self, call: Callable[[], None]) -> None:
        """Run a store call that waits for a durable COMMIT. On PostgreSQL that is a network round trip and
        a WAL flush (~5 ms on a plain disk): in a thread, so that the server's other turns go on meanwhile
        and their commits can share a flush. The local SQLite store is called as before."""
        await off_the_loop(self.store, call)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        approve: Approve | None = None,
        stream: bool = True,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[Event]:
        """One turn over messages the caller holds (OpenAI-compatible requests): nothing is stored.

        ``options``: execution settings for this turn (``max_tokens``, ``temperature``...)."""
        given = list(messages)
        lead = 0  # the caller's leading system messages are its instructions: always kept
        while lead < len(given) and given[lead].role == "system":
            lead += 1
        preamble, given = given[:lead], given[lead:]
        newest = next((m.content for m in reversed(given) if m.role == "user"), "")
        blocked = await self._screen_or_error("input", newest)  # the older ones were new once, and screened
        if blocked is not None:
            for event in _blocked_turn(blocked, ""):
                yield event
            return
        pending: list[Message] = []
        budget = self._history_budget() - sum(message_tokens(m) for m in preamble)
        async for event in self._turn(
            lambda: [*preamble, *fit([*given, *pending], budget, max_turns=self.max_turns)],
            pending,
            lambda: None,
            approve=approve,
            stream=stream,
            options=options,
        ):
            yield event

    async def _turn(
        self,
        prompt: Callable[[], list[Message]],
        pending: list[Message],
        commit: Callable[[], None],
        *,
        approve: Approve | None,
        stream: bool,
        options: dict[str, Any] | None = None,
        conversation_id: str = "",
    ) -> AsyncIterator[Event]:
        """The turn's events; with telemetry on, in one ``invoke_agent`` span (model and function calls under it)."""
        scope = self._turn_scope(conversation_id) if telemetry.active() else None
        try:
            async for event in self._rounds(prompt, pending, commit, approve, stream, options, scope):
                if scope is not None:
                    _end_turn_span(scope, event)
                yield event
        finally:
            if scope is not None:
                scope.end()

    def _turn_scope(self, conversation_id: str) -> telemetry.Scope | None:
        from kernel_app.providers.model_spans import provider_name

        attributes: dict[str, Any] = {
            telemetry.OPERATION: "invoke_agent",
            telemetry.AGENT: telemetry.AGENT_NAME,
            telemetry.PROVIDER: provider_name(self.service),
            telemetry.REQUEST_MODEL: self.model,
            **telemetry.enduser(),
        }
        if conversation_id:
            attributes[telemetry.CONVERSATION_ID] = conversation_id
        return telemetry.begin(f"invoke_agent {telemetry.AGENT_NAME}", attributes, conversation_id=conversation_id)

    async def _rounds(
        self,
        prompt: Callable[[], list[Message]],
        pending: list[Message],
        commit: Callable[[], None],
        approve: Approve | None,
        stream: bool,
        options: dict[str, Any] | None,
        scope: telemetry.Scope | None,
    ) -> AsyncIterator[Event]:
        usage = Usage()
        try:
            service = self.service
            tools = self._offers_tools()
            offered: list[str] = []
            made: set[str] = set()  # the calls run this turn, as function and arguments
            answer_now = False
            last_result = ""  # of the turn's last call that ran
            boundary = new_boundary()  # the turn's fence for retrieved text: no stored text can close it
            if tools:
                asked = next((m.content for m in reversed(prompt()) if m.role == "user"), "") or ""
                with telemetry.within(scope):
                    offered = await self.offered_functions(asked)
            for round_index in range(self.max_rounds + 1):
                offer = tools and round_index < self.max_rounds and not answer_now
                history = self.chat_history(prompt(), boundary=boundary)
                settings = self._settings(service, offer, options, offered)
                kwargs: dict[str, Any] = {}
                if offer:
                    from semantic_kernel.functions import KernelArguments

                    kwargs = {"kernel": self.kernel, "arguments": KernelArguments()}
                text_parts: list[str] = []
                calls: list[Any] = []
                finish = "stop"
                if stream:
                    merged = None
                    chunks = service.get_streaming_chat_message_content(history, settings, **kwargs)
                    if scope is not None:
                        chunks = telemetry.each_within(scope, chunks)
                    async for chunk in chunks:
                        if chunk is None:
                            continue
                        usage = usage + Usage.from_metadata(getattr(chunk, "metadata", None))
                        merged = chunk if merged is None else merged + chunk
                        if chunk.content:
                            text_parts.append(str(chunk.content))
                            yield TextDelta(str(chunk.content))
                    if merged is not None:
                        calls = _function_calls(merged)
                        finish = _finish(merged)
                else:
                    with telemetry.within(scope):
                        message = await service.get_chat_message_content(history, settings, **kwargs)
                    if message is not None:
                        usage = usage + Usage.from_metadata(getattr(message, "metadata", None))
                        calls = _function_calls(message)
                        finish = _finish(message)
                        if message.content:
                            text_parts.append(str(message.content))
                            yield TextDelta(str(message.content))
                text = "".join(text_parts)
                if not calls and not text.strip() and last_result:
                    # A small model may answer nothing after its calls (docs/models.md): the last result is
                    # the answer rather than an empty one.
                    text = last_result
                    yield TextDelta(text)
                if not calls:
                    blocked = await self._screened("output", text)
                    if blocked is not None:  # the refusal is what is stored and shown, not the answer
                        text, finish = refusal_text(blocked.stage, _verdict(blocked)), "content_filter"
                        yield blocked
                    pending.append(Message("assistant", text, tokens=usage.completion_tokens or None))
                    yield Done("", text, usage, finish)
                    return
                fresh: list[ToolCall] = []
                for c in calls:  # a call it has the result of already is not run again
                    call = ToolCall(c.id or f"call_{uuid.uuid4().hex[:8]}", _dotted(c), _arguments(c))
                    if _call_key(call) not in made:
                        made.add(_call_key(call))
                        fresh.append(call)
                if not fresh:
                    # Only repeats (the 0.5B tier's habit, docs/models.md): the next round offers no tools,
                    # so it answers from the result it has.
                    answer_now = True
                    continue
                tool_calls = tuple(fresh)
                pending.append(Message("assistant", text, tool_calls=tool_calls))
                shown = ""  # the result of the round's last call, when it is the answer itself
                sent = ""  # what of it the call sent as text while it ran (answer_parts)
                for call in tool_calls:
                    parts: list[str] = []
                    async for event in self._call(call, approve, pending, commit, offered, scope, stream):
                        if isinstance(event, _Usage):
                            usage = usage + event.usage
                        else:
                            yield event
                        if isinstance(event, TextDelta):
                            parts.append(event.text)
                        if isinstance(event, FunctionCallFinished):
                            shown = pending[-1].content if self._is_answer(event) else ""
                            sent = "".join(parts)
                            last_result = pending[-1].content if event.ok else last_result
                if shown:
                    # The turn ends with it (calls.result_is_answer): asked for more, a small model echoes
                    # the request or the result, for minutes (docs/models.md).
                    finish = "stop"
                    blocked = await self._screened("output", shown)
                    if blocked is not None:
                        shown, finish = refusal_text(blocked.stage, _verdict(blocked)), "content_filter"
                        yield blocked
                    pending.append(Message("assistant", shown))
                    rest = shown if blocked is not None else _unsent(shown, sent)
                    if rest:
                        yield TextDelta(rest)
                    yield Done("", shown, usage, finish)
                    return
            yield Done("", "", usage, "length")  # unreachable: the last round offers no tools
        except KernelAppError as error:
            yield ErrorEvent(str(error))
        except Exception as error:  # a model or plugin failure ends the turn, not the conversation
            yield ErrorEvent(f"failed: {innermost_message(error)}")

    async def _call(
        self,
        call: ToolCall,
        approve: Approve | None,
        pending: list[Message],
        commit: Callable[[], None],
        offered: Sequence[str] | None = None,
        scope: telemetry.Scope | None = None,
        stream: bool = False,
    ) -> AsyncIterator[Event | _Usage]:
        """Run one call; streamed, a function whose result is the answer sends it as text while it runs."""
        from semantic_kernel.functions import KernelArguments

        yield FunctionCallStarted(call.id, call.function, call.arguments)
        began = time.perf_counter()
        ok, ran_with_effect = False, False
        plugin, _, name = call.function.partition(".")
        may_call = call.function in (self.allowed_functions() if offered is None else offered)
        arguments, problem = dict(call.arguments), ""
        function = self.kernel.get_function(plugin, name) if may_call else None
        if function is not None:
            from kernel_app.conversation.calls import checked_arguments

            arguments, problem = checked_arguments(function, call.function.replace(".", "-", 1), call.arguments)
        if function is None:
            output = f"{call.function} is not a function you may call"
        elif problem:
            output = problem  # nothing can run, so nothing is approved; the next round is the model's retry
        else:
            allowed, refusal = True, ""
            if self.approval_rule(function):
                from kernel_app.base.effects import effect_of

                request = ApprovalNeeded(
                    f"approval_{uuid.uuid4().hex[:12]}",
                    call.id,
                    call.function,
                    arguments,
                    effect_of(function).value,
                )
                yield request
                answer = await ask_approval(approve, request)
                allowed = bool(answer)
                ran_with_effect = allowed
                if isinstance(answer, Refusal):
                    refusal = answer.reason
            if not allowed:
                output = refusal or (
                    f"The user did not approve running {call.function}; do not retry it, answer without it."
                )
            else:
                blocks: list[Any] = []
                try:
                    running: AnswerParts[Any] | None = None
                    with (
                        collect_usage() as collector,
                        collect_blocks() as blocks,
                        telemetry.within(scope),
                        telemetry.tool_call(call.id),
                    ):
                        if stream and _is_answer_function(function):
                            # Started here, the task runs within these collectors; its parts are yielded
                            # outside them (a yield must not leave a context variable set for the consumer).
                            running = AnswerParts(self.kernel.invoke(function, KernelArguments(**arguments)))
                            result = None
                        else:
                            result = await self.kernel.invoke(function, KernelArguments(**arguments))
                    if running is not None:
                        async for part in running.parts():
                            yield TextDelta(part)
                        result = running.result()
                    yield _Usage(collector.total)
                    output, ok = result_text(result), True
                except Exception as error:
                    output = f"error: {error if isinstance(error, KernelAppError) else innermost_message(error)}"
                for report in blocks:  # what the function left out (the memory plugin's flagged records)
                    yield ContentBlocked(report.stage, report.verdict.category, report.verdict.reason)
                if ok and plugin != "memory":  # memory screens each record itself
                    withheld = await self._screened("tool_result", output)
                    if withheld is not None:  # the model is told why, never shown the text
                        output, ok = refusal_text(withheld.stage, _verdict(withheld)), False
                        yield withheld
        pending.append(Message("tool", output, name=call.function, call_id=call.id))
        if ran_with_effect:
            await self._off_the_loop(commit)  # what was done to the world is on record even if the turn fails later
        yield FunctionCallFinished(
            call.id, call.function, call.arguments, _summary(output), ok, round(time.perf_counter() - began, 3)
        )

    async def _screened(self, stage: Stage, text: str) -> ContentBlocked | None:
        """The event when the screen flags ``text``; None when it passes (or there is no screen)."""
        screen = self.screen
        if screen is None or not text.strip():
            return None
        found = await screen.screen(text, stage)
        return ContentBlocked(stage, found.category, found.reason) if found.flagged else None

    async def _screen_or_error(self, stage: Stage, text: str) -> ContentBlocked | ErrorEvent | None:
        """:meth:`_screened`, with a hosted screen's failure as the turn's error (it fails closed)."""
        try:
            return await self._screened(stage, text)
        except KernelAppError as error:
            return ErrorEvent(str(error))
        except Exception as error:
            return ErrorEvent(f"failed: content safety: {innermost_message(error)}")

    def _is_answer(self, finished: FunctionCallFinished) -> bool:
        """Whether a call's result is shown to the user as it is (kernel_app.conversation.calls)."""
        if not finished.ok:
            return False
        from kernel_app.conversation.calls import is_answer

        plugin, _, name = finished.function.partition(".")
        return is_answer(self.kernel.get_function(plugin, name))

    def _settings(
        self,
        service: ChatCompletionClientBase,
        offer_tools: bool,
        options: dict[str, Any] | None = None,
        offered: Sequence[str] | None = None,
    ) -> Any:
        from kernel_app.providers.execution_settings import execution_settings

        defaults: dict[str, Any] = {"max_tokens": self.max_tokens}
        if getattr(service, "planner_max_functions", None):
            # A small model (it says how many functions it handles) calls tools far more reliably when it
            # samples cold (docs/models.md): its profile's tool_temperature, else the generic profile's.
            defaults["temperature"] = tool_temperature(service)
        settings = execution_settings(service, {**defaults, **(options or {})})
        if offer_tools:
            from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior

            names = self.allowed_functions() if offered is None else offered
            allowed = [name.replace(".", "-", 1) for name in names]
            # semantic-kernel 1.45 leaves Auto()'s **kwargs unannotated (Unknown to pyright).
            settings.function_choice_behavior = FunctionChoiceBehavior.Auto(  # pyright: ignore[reportUnknownMemberType]
                auto_invoke=False, filters={"included_functions": allowed}
            )
        return settings

    # endregion


def _end_turn_span(scope: telemetry.Scope, event: Event) -> None:
    """What the turn's span says of how it ended: usage and finish reason, or the error."""
    if isinstance(event, Done):
        scope.span.set_attribute(telemetry.FINISH_REASONS, [event.finish_reason])
        if event.usage.prompt_tokens or event.usage.completion_tokens:
            scope.span.set_attribute(telemetry.INPUT_TOKENS, event.usage.prompt_tokens)
            scope.span.set_attribute(telemetry.OUTPUT_TOKENS, event.usage.completion_tokens)
    elif isinstance(event, ErrorEvent):
        error_type = "Exception" if event.message.startswith("failed:") else "KernelAppError"
        scope.fail(error_type, event.message[:200])


def is_data_function(name: str) -> bool:
    """Whether a function's result is retrieved text, fenced as data in the prompt (``Plugin.Function``)."""
    plugin = name.partition(".")[0]
    return name in DATA_FUNCTIONS or plugin in DATA_PLUGINS


def _verdict(blocked: ContentBlocked) -> Any:
    from kernel_app.providers.content_safety import Verdict

    return Verdict(True, blocked.category, blocked.reason)


def _blocked_turn(blocked: ContentBlocked | ErrorEvent, conversation_id: str) -> list[Event]:
    """A turn whose message was blocked: the event and a ``Done`` with the refusal (or the screen's error)."""
    if isinstance(blocked, ErrorEvent):
        return [blocked]
    text = refusal_text(blocked.stage, _verdict(blocked))
    return [blocked, Done(conversation_id, text, Usage(), "content_filter")]


@dataclass(frozen=True)
class _Usage:
    """Internal: the usage of prompt functions a call ran."""

    usage: Usage


async def collect(events: AsyncIterator[Event]) -> TurnResult:
    """Gather a turn's events into a :class:`TurnResult`."""
    result = TurnResult()
    async for event in events:
        result.events.append(event)
        if isinstance(event, Done):
            result.text, result.usage, result.finish_reason = event.text, event.usage, event.finish_reason
        elif isinstance(event, ErrorEvent):
            result.error = event.message
    return result


@dataclass(frozen=True)
class Refusal:
    """An approval answer that is a no with a reason the model is told (a surface that cannot ask
    anyone, such as the OpenAI-compatible endpoint, says why). Falsy, as a no."""

    reason: str

    def __bool__(self) -> bool:
        return False


async def ask_approval(approve: Approve | None, request: ApprovalNeeded) -> bool | Refusal:
    """The surface's answer to an approval request (sync or async); no callback means no."""
    if approve is None:
        return False
    answer = approve(request)
    if inspect.isawaitable(answer):
        answer = await answer
    return answer if isinstance(answer, Refusal) else bool(answer)


def result_text(result: Any) -> str:
    """A function result as text: the text of chat messages, JSON for data, never a repr."""
    value: object = getattr(result, "value", result)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    messages = _messages_text(value)
    if messages is not None:
        return messages
    if hasattr(value, "content") and hasattr(value, "role"):
        return str(getattr(value, "content", None) or "")
    if isinstance(value, bool | int | float):
        return str(value)
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _messages_text(value: object) -> str | None:
    """The text of a non-empty list of chat messages, or None when ``value`` is not one."""
    if not isinstance(value, list):
        return None
    items = cast("list[object]", value)  # a function's result: a list of anything
    if not items or not all(hasattr(item, "content") for item in items):
        return None
    return "\n".join(str(getattr(item, "content", None) or "") for item in items)


def _function_calls(message: Any) -> list[Any]:
    from semantic_kernel.contents import FunctionCallContent

    return [item for item in getattr(message, "items", []) or [] if isinstance(item, FunctionCallContent)]


def _finish(message: Any) -> str:
    reason = getattr(message, "finish_reason", None)
    value = str(getattr(reason, "value", reason) or "stop")
    return "length" if value == "length" else "stop"


def _call_key(call: ToolCall) -> str:
    return f"{call.function} {json.dumps(call.arguments, sort_keys=True, default=str)}"


def _dotted(call: Any) -> str:
    if call.plugin_name:
        return f"{call.plugin_name}.{call.function_name}"
    return str(call.name or call.function_name).replace("-", ".", 1)


def _arguments(call: Any) -> dict[str, Any]:
    try:
        parsed: object = call.parse_arguments()
    except Exception:
        return {"_unparsed": str(call.arguments)}
    if not parsed:
        return {}
    if not isinstance(parsed, Mapping):  # '"a bakery"' parses, to a string: the model is told (calls.py)
        return {"_unparsed": str(call.arguments)}
    return {str(k): v for k, v in cast("Mapping[object, Any]", parsed).items()}


def _is_answer_function(function: Any) -> bool:
    from kernel_app.conversation.calls import is_answer

    return is_answer(function)


def _unsent(answer: str, sent: str) -> str:
    """What of ``answer`` is still to send after the text ``sent`` while it was made (the parts joined: nothing)."""
    if answer.startswith(sent):
        return answer[len(sent) :]
    return answer  # parts that were not the answer's start: the answer, whole, after them


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _title(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def tool_temperature(service: ChatCompletionClientBase) -> float:
    """The temperature a small model samples at when offered tools: its model profile's (the embedded
    service has one), else the generic profile's, for any other service that declares its limit."""
    profile = getattr(service, "profile", None)
    return (profile if isinstance(profile, ModelProfile) else GENERIC).tool_temperature
