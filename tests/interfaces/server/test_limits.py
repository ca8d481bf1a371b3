"""The deadline of one turn (``gated``): time without progress, not the turn's whole length."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from kernel_app.conversation.events import Done, ErrorEvent, Event, TextDelta
from kernel_app.interfaces.server.limits import GenerationGate, gated


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
