"""A scripted chat service: returns queued answers and records every request.

The test double for unit tests and benchmarks (in the spirit of pydantic-ai's ``FunctionModel``):
queue plain strings — including malformed ones — function calls made with ``call(...)``, or callables
that compute an answer from the request, then assert on ``requests``. It is a real semantic-kernel
chat service, so everything above it (templates, filters, planners, the function-calling loop) runs
for real::

    service = ScriptedChatCompletion([call("Math.add", a=2, b=3), "5"])

answers the first request with a call of ``Math.add`` (the kernel runs it) and the next with "5".
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import PrivateAttr
from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
from semantic_kernel.connectors.ai.completion_usage import CompletionUsage
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import (
    ChatHistory,
    ChatMessageContent,
    FunctionCallContent,
    FunctionResultContent,
    StreamingChatMessageContent,
)
from semantic_kernel.contents.utils.author_role import AuthorRole


@dataclass(frozen=True)
class ScriptedCall:
    """One function call the scripted model makes; made with ``call(...)``."""

    name: str
    arguments: str  # the JSON text a model would write, malformed if the test says so

    def content(self, call_id: str) -> FunctionCallContent:
        # "Math.add" as a person writes it; semantic-kernel's fully qualified "Math-add" passes as is.
        plugin, dot, function = self.name.partition(".")
        if dot:
            return FunctionCallContent(id=call_id, plugin_name=plugin, function_name=function, arguments=self.arguments)
        return FunctionCallContent(id=call_id, name=self.name, arguments=self.arguments)


def call(name: str, arguments_json: str | None = None, /, **arguments: Any) -> ScriptedCall:
    """A scripted answer that calls a function: ``call("Math.add", a=2, b=3)``.

    ``name`` is ``Plugin.function`` (or semantic-kernel's ``Plugin-function``). To script the arguments
    exactly as a model wrote them, malformed ones included, pass their JSON text instead of keywords:
    ``call("Math.add", '{"a": 2,')``. Several calls in one answer: a list, ``[call(...), call(...)]``.
    """
    if arguments_json is not None and arguments:
        raise TypeError(f"call({name!r}): give the arguments as keywords or as JSON text, not both")
    return ScriptedCall(name, arguments_json if arguments_json is not None else json.dumps(arguments))


Reply = str | ScriptedCall | Sequence[ScriptedCall]
Answer = Reply | Callable[["ScriptedRequest"], Reply]


def _calls_in(reply: Reply) -> list[ScriptedCall] | None:
    if isinstance(reply, ScriptedCall):
        return [reply]
    if isinstance(reply, str):
        return None
    calls = list(reply) if isinstance(reply, Sequence) else []
    if not calls or not all(isinstance(c, ScriptedCall) for c in calls):
        raise TypeError(f"a scripted answer is a string, call(...) or a non-empty list of call(...), not {reply!r}")
    return calls


def _scripts_a_call(answer: Answer | None) -> bool:
    return answer is not None and not callable(answer) and _calls_in(answer) is not None


@dataclass
class ScriptedRequest:
    """One request as the service saw it."""

    messages: list[dict[str, str]]
    settings: dict[str, Any]
    streaming: bool
    # The function-calling allow-list the request carried (its FunctionChoiceBehavior's
    # included_functions); None when the request asked for no function calling.
    offered: list[str] | None = None
    # The results of function calls in the history the request carried, as text.
    function_results: list[str] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        """The text of all messages, joined: what most assertions want."""
        return "\n".join(m["content"] for m in self.messages)


class ScriptedAnswersExhausted(AssertionError):
    """More requests were made than answers queued: the test's script is wrong."""


class ScriptedChatCompletion(ChatCompletionClientBase):
    """Answers from a queue; usage counts words so token accounting is exercised.

    It is a service that calls functions (``SUPPORTS_FUNCTION_CALLING``) once a call is scripted, in
    ``answers``, ``default`` or ``queue``, or when made with ``function_calling=True`` (for callables that
    answer with calls, or to see what a turn offers before it calls anything).
    """

    _answers: deque[Answer] = PrivateAttr(default_factory=deque)
    _requests: list[ScriptedRequest] = PrivateAttr(default_factory=list)
    _default: Answer | None = PrivateAttr(default=None)
    _function_calling: bool = PrivateAttr(default=False)

    def __init__(
        self,
        answers: Iterable[Answer] = (),
        *,
        default: Answer | None = None,
        function_calling: bool | None = None,
        ai_model_id: str = "scripted",
        service_id: str | None = None,
    ) -> None:
        super().__init__(ai_model_id=ai_model_id, service_id=service_id or ai_model_id)
        self._answers = deque(answers)
        self._default = default
        if function_calling is None:
            function_calling = any(_scripts_a_call(a) for a in (*self._answers, default))
        self._function_calling = function_calling

    # semantic-kernel declares it a ClassVar and reads it from the instance: a property lets one scripted
    # service call functions and another, in the same test run, not.
    @property
    def SUPPORTS_FUNCTION_CALLING(self) -> bool:  # type: ignore[override]
        return self._function_calling

    @property
    def requests(self) -> list[ScriptedRequest]:
        return self._requests

    @property
    def remaining(self) -> int:
        return len(self._answers)

    def queue(self, *answers: Answer) -> None:
        self._answers.extend(answers)
        if any(_scripts_a_call(a) for a in answers):
            self._function_calling = True

    def _next(self, chat_history: ChatHistory, settings: PromptExecutionSettings, streaming: bool) -> Reply:
        behavior = settings.function_choice_behavior
        request = ScriptedRequest(
            messages=[{"role": str(m.role.value), "content": m.content or ""} for m in chat_history.messages],
            # Generic settings keep config.json values in extension_data; typed ones in fields.
            settings={**settings.extension_data, **settings.prepare_settings_dict()},
            streaming=streaming,
            offered=list((behavior.filters or {}).get("included_functions", [])) if behavior else None,
            function_results=[
                str(item.result)
                for message in chat_history.messages
                for item in message.items
                if isinstance(item, FunctionResultContent)
            ],
        )
        self._requests.append(request)
        if self._answers:
            answer = self._answers.popleft()
        elif self._default is not None:
            answer = self._default
        else:
            raise ScriptedAnswersExhausted(
                f"request {len(self._requests)} has no scripted answer; prompt was: {request.prompt[:200]!r}"
            )
        return answer(request) if callable(answer) else answer

    def _call_contents(self, reply: Reply) -> list[FunctionCallContent] | None:
        calls = _calls_in(reply)
        if calls is None:
            return None
        return [c.content(call_id=f"call_{len(self._requests)}_{n}") for n, c in enumerate(calls)]

    def _usage(self, chat_history: ChatHistory, text: str) -> CompletionUsage:
        prompt_words = sum(len((m.content or "").split()) for m in chat_history.messages)
        return CompletionUsage(prompt_tokens=prompt_words, completion_tokens=len(text.split()))

    async def _inner_get_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings
    ) -> list[ChatMessageContent]:
        reply = self._next(chat_history, settings, streaming=False)
        calls = self._call_contents(reply)
        if calls is not None:
            return [ChatMessageContent(role=AuthorRole.ASSISTANT, items=[*calls], ai_model_id=self.ai_model_id)]
        text = str(reply)
        return [
            ChatMessageContent(
                role=AuthorRole.ASSISTANT,
                content=text,
                ai_model_id=self.ai_model_id,
                metadata={"usage": self._usage(chat_history, text)},
            )
        ]

    async def _inner_get_streaming_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings, function_invoke_attempt: int = 0
    ) -> AsyncGenerator[list[StreamingChatMessageContent], Any]:
        reply = self._next(chat_history, settings, streaming=True)
        calls = self._call_contents(reply)
        if calls is not None:
            yield [
                StreamingChatMessageContent(
                    role=AuthorRole.ASSISTANT, choice_index=0, items=[*calls], ai_model_id=self.ai_model_id
                )
            ]
            return
        text = str(reply)
        words = text.split(" ")
        for index, word in enumerate(words):
            last = index == len(words) - 1
            yield [
                StreamingChatMessageContent(
                    role=AuthorRole.ASSISTANT,
                    choice_index=0,
                    content=word if last else word + " ",
                    ai_model_id=self.ai_model_id,
                    metadata={"usage": self._usage(chat_history, text)} if last else {},
                )
            ]
