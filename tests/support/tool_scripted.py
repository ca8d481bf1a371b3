"""The scripted chat service taught to answer with tool calls, and services built on it for tests.

``ToolScripted`` reads an answer made by ``tools(...)`` as a tool-call message, so the kernel's (or the
conversation engine's) own function-calling loop runs the calls for real; it records which functions
each request offered and which function results it carried.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import PrivateAttr
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import (
    ChatHistory,
    ChatMessageContent,
    FunctionCallContent,
    FunctionResultContent,
    StreamingChatMessageContent,
)
from semantic_kernel.contents.utils.author_role import AuthorRole

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationEngine, ConversationStore
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion

TOOLS = "\x00tools:"


def tools(*calls: tuple[str, dict[str, Any]]) -> str:
    """A scripted answer that is a tool-call message: ``tools(("Math-add", {"a": 2, "b": 3}))``."""
    return TOOLS + json.dumps([[name, args] for name, args in calls])


class ToolScripted(ScriptedChatCompletion):
    """The scripted service, able to answer with tool calls; records the allow-list each request offered."""

    SUPPORTS_FUNCTION_CALLING: ClassVar[bool] = True
    _offered: list[list[str] | None] = PrivateAttr(default_factory=list)

    _results: list[list[str]] = PrivateAttr(default_factory=list)

    @property
    def offered(self) -> list[list[str] | None]:
        return self._offered

    @property
    def tool_results(self) -> list[list[str]]:
        """Per request, the function results it carried (the scripted record keeps only text content)."""
        return self._results

    def _calls(
        self, text: str, settings: PromptExecutionSettings, history: ChatHistory
    ) -> list[FunctionCallContent] | None:
        behavior = settings.function_choice_behavior
        self._results.append(
            [str(i.result) for m in history.messages for i in m.items if isinstance(i, FunctionResultContent)]
        )
        self.offered.append(list((behavior.filters or {}).get("included_functions", [])) if behavior else None)
        if not text.startswith(TOOLS):
            return None
        calls = json.loads(text[len(TOOLS) :])
        return [
            FunctionCallContent(id=f"call_{len(self.requests)}_{n}", name=name, arguments=json.dumps(args))
            for n, (name, args) in enumerate(calls)
        ]

    async def _inner_get_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings
    ) -> list[ChatMessageContent]:
        [message] = await super()._inner_get_chat_message_contents(chat_history, settings)
        calls = self._calls(message.content or "", settings, chat_history)
        if calls is None:
            return [message]
        return [ChatMessageContent(role=AuthorRole.ASSISTANT, items=calls, ai_model_id=self.ai_model_id)]

    async def _inner_get_streaming_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings, function_invoke_attempt: int = 0
    ) -> AsyncGenerator[list[StreamingChatMessageContent], Any]:
        chunks = [c async for c in super()._inner_get_streaming_chat_message_contents(chat_history, settings)]
        text = "".join(str(c[0].content or "") for c in chunks)
        calls = self._calls(text, settings, chat_history)
        if calls is None:
            for chunk in chunks:
                yield chunk
            return
        yield [
            StreamingChatMessageContent(
                role=AuthorRole.ASSISTANT, choice_index=0, items=calls, ai_model_id=self.ai_model_id
            )
        ]


def engine_with(
    *answers: str, tmp_path: Path | None = None, default: str | None = None, **options: Any
) -> tuple[ConversationEngine, ToolScripted]:
    service = ToolScripted(list(answers), default=default)
    settings = Settings(memory_dir=tmp_path / "store") if tmp_path else Settings()
    store = ConversationStore(tmp_path / "conversations.sqlite3") if tmp_path else None
    return ConversationEngine(build_kernel(settings, chat_service=service).kernel, store, **options), service


class Typing(ToolScripted):
    """Streams its words 0.4 s apart, as a model does: Teams' 1 s stream interval then sends some of them."""

    async def _inner_get_streaming_chat_message_contents(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        async for chunk in super()._inner_get_streaming_chat_message_contents(*args, **kwargs):
            await asyncio.sleep(0.4)
            yield chunk


class Blocking(ToolScripted):
    """Holds every request until ``release`` is set: the model is busy (``entered`` says since when)."""

    _entered: threading.Event = PrivateAttr(default_factory=threading.Event)
    _release: threading.Event = PrivateAttr(default_factory=threading.Event)

    @property
    def entered(self) -> threading.Event:
        return self._entered

    @property
    def release(self) -> threading.Event:
        return self._release

    async def _hold(self) -> None:
        self._entered.set()
        while not self._release.is_set():
            await asyncio.sleep(0.02)

    async def _inner_get_chat_message_contents(self, *args: Any, **kwargs: Any) -> Any:
        await self._hold()
        return await super()._inner_get_chat_message_contents(*args, **kwargs)

    async def _inner_get_streaming_chat_message_contents(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        await self._hold()
        async for chunk in super()._inner_get_streaming_chat_message_contents(*args, **kwargs):
            yield chunk
