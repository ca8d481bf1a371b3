"""Generation limits: a bounded queue in front of the model, and a deadline per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from kernel_app.conversation.events import ErrorEvent, Event

T = TypeVar("T")
CLIENT_GONE = 499  # nginx's "client closed request": nobody reads it, but the access log says why


class Busy(Exception):
    """The queue in front of the model is full: answer 429 with ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the model is busy: {retry_after} s, then try again")
        self.retry_after = retry_after


class GenerationGate:
    """At most ``concurrency`` generations at once, at most ``queue`` waiting (first come, first served).

    The embedded model answers one request at a time (concurrency 1); a hosted service takes more.
    """

    def __init__(self, concurrency: int = 1, queue: int = 8, retry_after: int = 5) -> None:
        self.concurrency = max(1, concurrency)
        self.queue = max(0, queue)
        self.retry_after = retry_after
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self.waiting = 0
        self.running = 0

    def check(self) -> None:
        """Raise :class:`Busy` now if a new request would not even get a place in the queue."""
        if self.running >= self.concurrency and self.waiting >= self.queue:
            raise Busy(self.retry_after)

    async def acquire(self) -> None:
        self.check()
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._semaphore.release()


async def gated(gate: GenerationGate, events: AsyncIterator[Event], timeout: float | None) -> AsyncIterator[Event]:
    """The events of one turn, holding a place at the gate, ended by an error event at the deadline.

    The deadline is ``timeout`` seconds without an event (a token, a function call, a table of a SWOT),
    restarted by each one: a turn that makes progress is never cut, however long it takes (the
    embedded model writes a SWOT's four tables in minutes on a busy laptop, and a fixed 300 s cut it
    off in the middle), and one that is stuck is stopped. The deadline cancels the task that runs the
    turn (as ``asyncio.timeout`` does; the model client's streams must stay in one task). A client that
    disconnects closes this generator: the turn is cancelled and its place is freed.
    """
    await gate.acquire()
    watch = StallWatch(timeout) if timeout else None
    if watch is not None:
        watch.start()
    try:
        async for event in events:
            if watch is not None:
                watch.progressed()
            yield event
    except asyncio.CancelledError:
        if watch is None or not watch.caught():
            raise
        yield ErrorEvent(f"the request made no progress for {timeout:g} s and was stopped")
    finally:
        if watch is not None:
            watch.stop()
        gate.release()
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


class Stalled(Exception):
    """:meth:`StallWatch.run`'s work made no progress for the watch's seconds and was cancelled."""


class StallWatch:
    """A deadline that progress restarts: :meth:`progressed` at each sign of progress, :meth:`run` around
    work awaited as one coroutine (a chat surface's turn whose progress arrives through callbacks), or
    :meth:`start` / :meth:`caught` / :meth:`stop` around a stream (:func:`gated`). It cancels the task
    that awaits, so the work stays in one task (the model client's streams must)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._expired = False

    def start(self) -> None:
        """Arm the deadline for the task running now (the one it cancels)."""
        self._task = asyncio.current_task()
        self._expired = False
        self._timer = asyncio.get_running_loop().call_later(self.seconds, self._expire)

    def progressed(self) -> None:
        """Restart the deadline (a token, a function call, a status line arrived)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._expire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def caught(self) -> bool:
        """After a CancelledError: whether the deadline caused it; if so the task is uncancelled, to go on."""
        if not self._expired:
            return False
        uncancel = getattr(self._task, "uncancel", None)
        if uncancel is not None:
            uncancel()
        return True

    def _expire(self) -> None:
        self._expired = True
        if self._task is not None:
            self._task.cancel()

    async def run(self, work: Awaitable[T]) -> T:
        """``work``'s result; raises :class:`Stalled` when it goes ``seconds`` without :meth:`progressed`."""
        self.start()
        try:
            return await work
        except asyncio.CancelledError:
            if not self.caught():
                raise
            raise Stalled(f"no progress for {self.seconds:g} s") from None
        finally:
            self.stop()


async def unless_disconnected(receive: Callable[[], Awaitable[Any]], work: Awaitable[T]) -> tuple[bool, T | None]:
    """``(True, result)`` of ``work``, or ``(False, None)`` when the client disconnects first: ``work`` is then
    cancelled, as a stream is when its client goes (the embedded model stops at the next token and frees
    the queue). ``receive`` is the request's ASGI receive; its body is read already, so the next message
    it gives is ``http.disconnect``, once the client has gone.

    ``work`` runs in the request's own task (as :func:`gated`'s deadline expects); one small task waits
    for the disconnect and cancels it.
    """
    current = asyncio.current_task()
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        if current is not None:
            current.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return True, await work
    except asyncio.CancelledError:
        if not gone:
            raise
        uncancel = getattr(current, "uncancel", None)
        if uncancel is not None:
            uncancel()
        return False, None
    finally:
        watcher.cancel()
