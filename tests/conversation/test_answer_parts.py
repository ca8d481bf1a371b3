"""A function whose result is the answer streams it in parts while it runs (the SWOT's four tables):
each part is a text event as it is sent, the answer is not sent again, and the stored answer is the parts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any, cast

from semantic_kernel.functions import kernel_function

from kernel_app.base.config import Settings
from kernel_app.base.effects import read_only
from kernel_app.base.partial_output import send_part
from kernel_app.conversation import ConversationEngine, Done, FunctionCallFinished, FunctionCallStarted, TextDelta
from kernel_app.conversation.calls import result_is_answer
from kernel_app.kernel.builder import build_kernel
from tests.support.tool_scripted import ToolScripted, engine_with, tools

TABLES = ["| Strengths |\n|---|\n| Fresh bread |\n", "\n| Weaknesses |\n|---|\n| Small shop |\n"]
ANSWER = "".join(TABLES)


class Tables:
    """Sends each table, then waits until the consumer has seen it (or gives up): only a stream can pass."""

    def __init__(self, threaded: bool = False, patience: float = 5) -> None:
        self.threaded = threaded
        self.patience = patience
        self.seen = asyncio.Event()
        self.waited_in_vain = False
        self.returned = False
        self.cancelled = False

    @result_is_answer
    @read_only  # runs unasked: no approval between the call and its parts
    @kernel_function(name="tables", description="Two SWOT tables of a business.")
    async def tables(self, input: str) -> str:
        for table in TABLES:
            self.seen.clear()
            if self.threaded:  # sent from a worker thread, as a blocking renderer would
                await asyncio.to_thread(send_part, table)
            else:
                send_part(table)
            try:
                await asyncio.wait_for(self.seen.wait(), self.patience)
            except TimeoutError:
                self.waited_in_vain = True
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        self.returned = True
        return ANSWER


async def run_turn(plugin: Tables, *, stream: bool = True) -> tuple[list[Any], Any]:
    engine, _ = engine_with(tools(("Shop-tables", {"input": "a bakery"})))
    engine.kernel.add_plugin(plugin, "Shop")
    conversation = engine.create()
    events: list[Any] = []
    async for event in engine.stream(conversation.id, "A SWOT of a bakery", stream=stream):
        events.append(event)
        if isinstance(event, TextDelta) and stream:
            assert not plugin.returned  # it arrived while the function was still running
            plugin.seen.set()
    return events, engine.store.messages(conversation.id)


async def test_each_part_is_a_text_event_before_the_function_returns_and_the_answer_is_not_sent_twice() -> None:
    for threaded in (False, True):
        plugin = Tables(threaded)
        events, stored = await run_turn(plugin)
        assert not plugin.waited_in_vain, threaded
        kinds = [type(e) for e in events]
        assert kinds == [FunctionCallStarted, TextDelta, TextDelta, FunctionCallFinished, Done], threaded
        assert [e.text for e in events if isinstance(e, TextDelta)] == TABLES
        done = events[-1]
        assert isinstance(done, Done) and done.text == ANSWER and done.finish_reason == "stop"
        assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
        assert stored[-1].content == ANSWER and stored[2].content == ANSWER


async def test_not_streamed_the_answer_comes_whole_as_before() -> None:
    plugin = Tables(patience=0.05)
    events, stored = await run_turn(plugin, stream=False)
    assert plugin.waited_in_vain  # nobody took its parts: no one saw them while it ran
    assert [e.text for e in events if isinstance(e, TextDelta)] == [ANSWER]
    assert stored[-1].content == ANSWER


async def test_a_consumer_that_stops_reading_cancels_the_function() -> None:
    plugin = Tables()
    engine, _ = engine_with(tools(("Shop-tables", {"input": "a bakery"})))
    engine.kernel.add_plugin(plugin, "Shop")
    events = cast("AsyncGenerator[Any, None]", engine.stream(engine.create().id, "A SWOT"))
    async for event in events:
        if isinstance(event, TextDelta):
            break  # the first table seen, never acknowledged
    await events.aclose()
    for _ in range(100):  # the engine's inner generators are closed by the loop, soon after
        if plugin.cancelled:
            break
        await asyncio.sleep(0.01)
    assert plugin.cancelled and not plugin.returned


class StructuredTools(ToolScripted):
    """The scripted service with OpenAI's settings class: the SWOT drafts in JSON and sends a table per quadrant."""

    def get_prompt_execution_settings_class(self) -> type:
        from semantic_kernel.connectors.ai.open_ai import OpenAIChatPromptExecutionSettings

        return OpenAIChatPromptExecutionSettings


async def test_the_swot_of_a_bakery_comes_as_four_tables() -> None:
    quadrants = ("strengths", "weaknesses", "opportunities", "threats")
    draft = {name: [{"point": f"A {name} point", "why": "Because"}] for name in quadrants}
    service = StructuredTools([tools(("BusinessThinking-SWOT", {"input": "a bakery"})), json.dumps(draft)])
    engine = ConversationEngine(build_kernel(Settings(), chat_service=service).kernel)
    conversation = engine.create()
    events = [e async for e in engine.stream(conversation.id, "A SWOT of a bakery", approve=lambda _: True)]
    tables = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(tables) == 4 and all(f"A {name} point" in t for name, t in zip(quadrants, tables, strict=True))
    done = events[-1]
    assert isinstance(done, Done) and done.text == "".join(tables)
    assert engine.store.messages(conversation.id)[-1].content == done.text
