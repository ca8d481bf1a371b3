"""A function's answer in parts while it runs (the SWOT's tables), as the engine's text as they come.

The engine is an async generator: it cannot yield while it awaits ``kernel.invoke``. So a function whose
result is the answer (:mod:`kernel_app.conversation.calls`) runs as a task under
:func:`kernel_app.base.partial_output.parts_to`, and :meth:`AnswerParts.parts` yields each part it sends
until it returns. The function runs on the engine's loop (semantic-kernel awaits a native function there)
or hands work to a thread (``asyncio.to_thread`` copies the context, so ``send_part`` reaches us there):
parts cross to the loop by ``call_soon_threadsafe``, from either, and keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Generic, TypeVar

from kernel_app.base.partial_output import parts_to

T = TypeVar("T")


class AnswerParts(Generic[T]):
    """Starts ``run()`` as a task at once, so that it runs in the caller's context (usage and block
    collectors, telemetry); :meth:`parts` yields what it sends, then :meth:`result` is what it returned."""

    def __init__(self, run: Coroutine[Any, Any, T]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()  # None: the function returned (or failed)
        self.sent: list[str] = []
        with parts_to(self._take):
            self._task: asyncio.Task[T] = asyncio.ensure_future(run)  # copies the context, parts_to included
        # Scheduled after every part the function sent before it returned: the end comes last.
        self._task.add_done_callback(lambda _: self._queue.put_nowait(None))

    def _take(self, text: str) -> None:
        # Safe from the loop's thread and any other; a thread still sending once the loop is closed (its
        # turn was cancelled) has no one to send to.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, text)

    async def parts(self) -> AsyncIterator[str]:
        """Each part as it is sent, until the function ends; stopped early, the function is cancelled."""
        try:
            while (part := await self._queue.get()) is not None:
                self.sent.append(part)
                yield part
        finally:
            if not self._task.done():
                self._task.cancel()

    def result(self) -> T:
        """What the function returned (its exception, raised); call after :meth:`parts` is exhausted."""
        return self._task.result()


__all__ = ["AnswerParts"]
