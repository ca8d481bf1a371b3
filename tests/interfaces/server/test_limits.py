"""The deadline of one turn (``gated``): time without progress, not the turn's whole length."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from kernel_app.conversation.events import Done, ErrorEvent, Event, TextDelta
from kernel_app.interfaces.server.limits import GenerationGate, Stalled, StallWatch, gated


async def tokens(count: int, apart: float, then_stall: float = 0.0) -> AsyncIterator[Event]:
    for index in range(count):
        await asyncio.sleep(apart)
        yield TextDelta(f"word{index} ")
    await asyncio.sleep(then_stall)
    yield Done(conversation_id="c1", text="")


async def collected(events: AsyncIterator[Event], timeout: float, gate: GenerationGate) -> list[Event]:
    return [event async for event in gated(gate, events, timeout)]


def test_a_turn_that_keeps_making_progress_is_never_cut() -> None:
    # 8 tokens 0.05 s apart: 0.4 s in all, twice the 0.2 s deadline, but never 0.2 s without one.
    gate = GenerationGate()
    events = asyncio.run(collected(tokens(8, 0.05), 0.2, gate))
    assert [type(event) for event in events] == [TextDelta] * 8 + [Done]
    assert gate.running == 0


def test_a_turn_that_stops_making_progress_is_stopped_with_the_reason() -> None:
    gate = GenerationGate()
    events = asyncio.run(collected(tokens(3, 0.05, then_stall=5.0), 0.2, gate))
    assert [type(event) for event in events] == [TextDelta] * 3 + [ErrorEvent]
    error = events[-1]
    assert isinstance(error, ErrorEvent) and error.message == "the request made no progress for 0.2 s and was stopped"
    assert gate.running == 0  # its place at the model is free again


async def ticking(watch: StallWatch, ticks: int, apart: float, then_stall: float = 0.0) -> str:
    """Work whose progress arrives by callback, as a chat surface's turn reports its chunks."""
    for _ in range(ticks):
        await asyncio.sleep(apart)
        watch.progressed()
    await asyncio.sleep(then_stall)
    return "answered"


def test_a_watched_turn_that_keeps_reporting_progress_finishes() -> None:
    async def main() -> str:
        watch = StallWatch(0.2)
        return await watch.run(ticking(watch, 8, 0.05))  # 0.4 s in all, never 0.2 s without a tick

    assert asyncio.run(main()) == "answered"


def test_a_watched_turn_that_stalls_is_cancelled_and_says_so() -> None:
    cancelled: list[bool] = []

    async def work(watch: StallWatch) -> str:
        try:
            return await ticking(watch, 2, 0.05, then_stall=5.0)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> str:
        watch = StallWatch(0.2)
        try:
            await watch.run(work(watch))
        except Stalled as stalled:
            return str(stalled)
        return "not stopped"

    assert asyncio.run(main()) == "no progress for 0.2 s"
    assert cancelled == [True]  # the work itself was cancelled (its model stream stops), in its own task
