"""A scripted chat service: returns queued answers and records every request.

The test double for unit tests and benchmarks (in the spirit of pydantic-ai's ``FunctionModel``):
queue plain strings — including malformed ones — or callables that compute an answer from the
request, then assert on ``requests``. It is a real semantic-kernel chat service, so everything
above it (templates, filters, planners) runs for real.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import PrivateAttr
from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
from semantic_kernel.connectors.ai.completion_usage import CompletionUsage
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import ChatHistory, ChatMessageContent, StreamingChatMessageContent
from semantic_kernel.contents.utils.author_role import AuthorRole

Answer = str | Callable[["ScriptedRequest"], str]


@dataclass
class ScriptedRequest:
    """One request as the service saw it."""

    messages: list[dict[str, str]]
    settings: dict[str, Any]
    streaming: bool

    @property
    def prompt(self) -> str:
        """The text of all messages, joined: what most assertions want."""
        return "\n".join(m["content"] for m in self.messages)


class ScriptedAnswersExhausted(AssertionError):
    """More requests were made than answers queued: the test's script is wrong."""


class ScriptedChatCompletion(ChatCompletionClientBase):
    """Answers from a queue; usage counts words so token accounting is exercised."""

    _answers: deque[Answer] = PrivateAttr(default_factory=deque)
    _requests: list[ScriptedRequest] = PrivateAttr(default_factory=list)
    _default: Answer | None = PrivateAttr(default=None)

    def __init__(
        self,
        answers: Iterable[Answer] = (),
        *,
        default: Answer | None = None,
        ai_model_id: str = "scripted",
        service_id: str | None = None,
    ) -> None:
        super().__init__(ai_model_id=ai_model_id, service_id=service_id or ai_model_id)
        self._answers = deque(answers)
        self._default = default

    @property
    def requests(self) -> list[ScriptedRequest]:
        return self._requests

    @property
    def remaining(self) -> int:
        return len(self._answers)

    def queue(self, *answers: Answer) -> None:
        self._answers.extend(answers)

    def _next(self, chat_history: ChatHistory, settings: PromptExecutionSettings, streaming: bool) -> str:
        request = ScriptedRequest(
            messages=[{"role": str(m.role.value), "content": m.content or ""} for m in chat_history.messages],
            # Generic settings keep config.json values in extension_data; typed ones in fields.
            settings={**settings.extension_data, **settings.prepare_settings_dict()},
            streaming=streaming,
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

    def _usage(self, chat_history: ChatHistory, text: str) -> CompletionUsage:
        prompt_words = sum(len((m.content or "").split()) for m in chat_history.messages)
        return CompletionUsage(prompt_tokens=prompt_words, completion_tokens=len(text.split()))

    async def _inner_get_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings
    ) -> list[ChatMessageContent]:
        text = self._next(chat_history, settings, streaming=False)
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
        text = self._next(chat_history, settings, streaming=True)
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
