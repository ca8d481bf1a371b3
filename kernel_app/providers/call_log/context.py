"""What a model call was made for: the function (and the functions around it) and the conversation.

The kernel's function-invocation filter and the conversation engine set these context variables (core
layers); the call recorder reads them when it writes a call. Context variables follow ``await`` and are
copied into the tasks semantic-kernel starts for parallel function calls, so a call made deep inside a
native function still knows which function and conversation it belongs to.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class FunctionFrame:
    """One function being run: ``Plugin.Function``, the arguments it was given (JSON-ready), and an id.

    A model call made inside it adds where the function's result should go (``on_result``): a native
    function's result is not its model's answer (BusinessThinking.SWOT renders tables from a JSON draft),
    and an eval case of it needs the result. The kernel's filter calls ``report_result`` when it ends.
    """

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    on_result: list[Callable[[str, str], None]] = field(default_factory=list)

    def report_result(self, text: str) -> None:
        """Give ``text``, this invocation's result, to whoever logged a model call inside it."""
        for sink in self.on_result:
            sink(self.id, text)


_functions: ContextVar[tuple[FunctionFrame, ...]] = ContextVar("kernel_app_call_functions", default=())
_conversation: ContextVar[str | None] = ContextVar("kernel_app_call_conversation", default=None)


def current_functions() -> tuple[FunctionFrame, ...]:
    """The functions running now, outermost first (empty outside any function: a chat turn, a planner)."""
    return _functions.get()


def current_conversation() -> str | None:
    return _conversation.get()


def json_ready(value: Any) -> Any:
    """An argument value as JSON can hold it: text, numbers, lists and mappings as they are, the rest as text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return str(value)


def frame(name: str, arguments: Mapping[str, Any]) -> FunctionFrame:
    return FunctionFrame(name.replace("-", "."), {str(k): json_ready(v) for k, v in arguments.items()})


@contextmanager
def in_function(entry: FunctionFrame) -> Iterator[None]:
    token = _functions.set((*_functions.get(), entry))
    try:
        yield
    finally:
        _functions.reset(token)


@contextmanager
def in_conversation(conversation_id: str | None) -> Iterator[None]:
    token = _conversation.set(conversation_id)
    try:
        yield
    finally:
        _conversation.reset(token)


@contextmanager
def _scope(function: FunctionFrame | None, conversation: str | None) -> Iterator[None]:
    if function is None and conversation is None:
        yield
        return
    if function is None:
        with in_conversation(conversation):
            yield
        return
    with in_function(function):
        if conversation is None:
            yield
            return
        with in_conversation(conversation):
            yield


async def scoped_stream(
    stream: AsyncIterator[T], *, function: FunctionFrame | None = None, conversation: str | None = None
) -> AsyncIterator[T]:
    """``stream`` with ``function`` pushed (and ``conversation`` set) while each of its items is produced.

    A streamed call happens while the caller iterates the stream: semantic-kernel 1.45's
    ``invoke_stream`` runs the function-invocation filters first and iterates the model's stream after
    they returned, so a filter's ``with`` block would be over by then. The variables are set around each
    step rather than around the whole iteration: they never leak into the caller's code between items,
    and no token is reset from another context when a generator is closed late.
    """
    iterator = stream.__aiter__()
    try:
        while True:
            with _scope(function, conversation):
                try:
                    item = await iterator.__anext__()
                except StopAsyncIteration:
                    return
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with _scope(function, conversation):
                await close()
