"""The scripted chat service as one that calls functions, and services built on it for tests.

``ToolScripted`` answers ``tools(...)`` (or ``call(...)``) with a tool-call message, so the kernel's (or
the conversation engine's) own function-calling loop runs the calls for real; ``offered`` and
``tool_results`` say which functions each request offered and which results it carried.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationEngine, ConversationStore
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import Answer, ScriptedCall, ScriptedChatCompletion, call


def tools(*calls: tuple[str, dict[str, Any]]) -> list[ScriptedCall]:
    """A scripted answer that is a tool-call message: ``tools(("Math-add", {"a": 2, "b": 3}))``.

    The older spelling of ``[call("Math.add", a=2, b=3)]`` (kernel_app.providers.scripted), kept for the
    tests written with it; new tests use ``call``.
    """
    return [call(name, json.dumps(args)) for name, args in calls]


class ToolScripted(ScriptedChatCompletion):
    """The scripted service as one that calls functions from the start, whatever it was given to answer,
    with each request's allow-list and function results at hand for assertions."""

    def __init__(self, answers: Iterable[Answer] = (), **options: Any) -> None:
        options.setdefault("function_calling", True)
        super().__init__(answers, **options)

    @property
    def offered(self) -> list[list[str] | None]:
        """Per request, the allow-list it offered (None: no function calling asked)."""
        return [request.offered for request in self.requests]

    @property
    def tool_results(self) -> list[list[str]]:
        """Per request, the function results it carried."""
        return [request.function_results for request in self.requests]


def engine_with(
    *answers: Answer, tmp_path: Path | None = None, default: Answer | None = None, **options: Any
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


class Slow(ToolScripted):
    """Takes ``delay`` seconds before each answer, as a model on a CPU does (a minute on the default one)."""

    _delay: float = PrivateAttr(default=1.0)

    def __init__(self, answers: Iterable[Answer] = (), *, delay: float, **options: Any) -> None:
        super().__init__(answers, **options)
        self._delay = delay

    @property
    def delay(self) -> float:
        return self._delay

    async def _inner_get_chat_message_contents(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.delay)
        return await super()._inner_get_chat_message_contents(*args, **kwargs)

    async def _inner_get_streaming_chat_message_contents(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        await asyncio.sleep(self.delay)
        async for chunk in super()._inner_get_streaming_chat_message_contents(*args, **kwargs):
            yield chunk


class Stepwise(ToolScripted):
    """Answers the first ``free`` requests at once, then each later one only when the test lets one more
    through (``allow()``, from any thread): a plan's model steps that end when the test says so, as slow
    steps on a real model do, without the test sleeping. ``waiting`` says a request is being held."""

    _free: int = PrivateAttr(default=0)
    _permits: threading.Semaphore = PrivateAttr(default_factory=lambda: threading.Semaphore(0))
    _waiting: threading.Event = PrivateAttr(default_factory=threading.Event)

    def __init__(self, answers: Iterable[Answer] = (), *, free: int = 0, **options: Any) -> None:
        super().__init__(answers, **options)
        self._free = free

    @property
    def waiting(self) -> threading.Event:
        return self._waiting

    def allow(self, count: int = 1) -> None:
        self._permits.release(count)

    async def _turn(self) -> None:
        if self._free > 0:
            self._free -= 1
            return
        self._waiting.set()
        while not self._permits.acquire(blocking=False):
            await asyncio.sleep(0.02)
        self._waiting.clear()

    async def _inner_get_chat_message_contents(self, *args: Any, **kwargs: Any) -> Any:
        await self._turn()
        return await super()._inner_get_chat_message_contents(*args, **kwargs)

    async def _inner_get_streaming_chat_message_contents(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        await self._turn()
        async for chunk in super()._inner_get_streaming_chat_message_contents(*args, **kwargs):
            yield chunk
