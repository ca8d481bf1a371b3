"""A native function's answer in parts, as each is ready (BusinessThinking.SWOT's tables, one per quadrant).

A prompt function streams its tokens; a native one returns once. The runner, when it streams a call,
opens :func:`parts_to` around it (so does the conversation engine, for a function whose result is the
answer: kernel_app.conversation.answer_parts); a native function that can tell a part is finished hands it to
:func:`send_part`, and its answer must then be those parts joined (the runner does not print it again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Parts:
    on_part: Callable[[str], None]
    sent: list[str] = field(default_factory=list)


_active: ContextVar[Parts | None] = ContextVar("kernel_app_partial_output", default=None)


@contextmanager
def parts_to(on_part: Callable[[str], None]) -> Iterator[Parts]:
    parts = Parts(on_part)
    token = _active.set(parts)
    try:
        yield parts
    finally:
        _active.reset(token)


def streaming() -> bool:
    """Whether someone takes parts of the current call (otherwise a function just returns its answer)."""
    return _active.get() is not None


def send_part(text: str) -> None:
    parts = _active.get()
    if parts is not None and text:
        parts.sent.append(text)
        parts.on_part(text)
