"""Conversation store calls that do not hold the event loop.

On PostgreSQL every store call is a network round trip (a write also waits for its WAL flush), and one
server's event loop would serve nothing else meanwhile: with the store called on the loop, one server
used ~0.9 of a core under load, the rest waiting (docs/scale-out.md). In a thread, the loop serves other
requests while the statement runs. A hand-off costs CPU too (~0.1 ms: the worker's wake-up, the GIL, the
loop's wake-up; an ``AsyncConnectionPool`` measured the same), so only PostgreSQL's store is called this
way: the SQLite store is a local file, called on the loop as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class HasBackend(Protocol):
    @property
    def backend(self) -> str: ...


def waits_on_network(store: HasBackend) -> bool:
    """Whether ``store``'s calls are round trips to a database server (PostgreSQL's store)."""
    return store.backend == "postgresql"


async def off_the_loop(store: HasBackend, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``call(*args, **kwargs)``, in a thread when ``store`` is PostgreSQL's, else on the loop.

    Cancelled while it waits, the call still runs to its end in its thread (a thread cannot be stopped)
    and its result is dropped: a call whose result must not be lost goes through :func:`kept_off_the_loop`."""
    if waits_on_network(store):
        return await asyncio.to_thread(call, *args, **kwargs)
    return call(*args, **kwargs)


async def kept_off_the_loop(store: HasBackend, call: Callable[[], T], *, if_cancelled: Callable[[T], object]) -> T:
    """:func:`off_the_loop` for a call whose result must be undone if nobody receives it: cancelled while
    the thread runs, ``if_cancelled(result)`` runs in a thread once the call returns (a turn recorded as
    in progress, which the cancelled engine would never end, is ended there; its failure is ignored, as
    that turn's row then expires). Not cancelled, nothing else happens."""
    if not waits_on_network(store):
        return call()
    job = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(job)  # the thread's result still arrives should this task be cancelled
    except asyncio.CancelledError:
        job.add_done_callback(lambda done: _undo(done, if_cancelled))
        raise


def _undo(done: asyncio.Future[T], if_cancelled: Callable[[T], object]) -> None:
    if done.cancelled() or done.exception() is not None:
        return  # nothing happened that needs undoing
    result = done.result()
    undo = asyncio.ensure_future(asyncio.to_thread(if_cancelled, result))
    undo.add_done_callback(_ignore_failure)


def _ignore_failure(done: asyncio.Future[object]) -> None:
    if not done.cancelled():
        done.exception()  # retrieved, so asyncio does not log "exception was never retrieved"
