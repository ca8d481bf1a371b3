"""Per turn the engine offers the functions most relevant to the message, bounded for the model in use.

Every schema of the kernel's ~47 functions is ~4,000 tokens, more than the embedded model's context; the
limit is ``max_functions``, else the service's ``planner_max_functions`` (the embedded tiers declare it); a
service that declares none (OpenAI, Azure) is offered every function.
"""

from __future__ import annotations

import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationEngine
from kernel_app.kernel.builder import build_kernel
from tests.support.tool_scripted import ToolScripted, engine_with, tools

pytestmark = pytest.mark.e2e  # the embedded embedder ranks the functions to offer


async def test_the_most_relevant_functions_are_offered_within_the_limit() -> None:
    engine, service = engine_with(tools(("Math-add", {"a": 2, "b": 3})), "5.", max_functions=3)
    conversation = engine.create()
    events = [e async for e in engine.stream(conversation.id, "Add the numbers 2 and 3: what is the sum?")]
    assert events[-1].text == "5."
    first = service.offered[0]
    assert len(first) == 3 and "Math-add" in first
    assert len(engine.allowed_functions()) > 3  # the kernel has many more


async def test_a_call_to_a_function_not_offered_this_turn_is_not_run() -> None:
    engine, service = engine_with(tools(("Text-upper", {"input": "x"})), "done", max_functions=2)
    conversation = engine.create()
    events = [e async for e in engine.stream(conversation.id, "Add the numbers 2 and 3")]
    finished = [e for e in events if type(e).__name__ == "FunctionCallFinished"]
    assert "Text-upper" not in service.offered[0]
    assert finished and not finished[0].ok and "not a function you may call" in finished[0].result


class FewFunctions(ToolScripted):
    planner_max_functions: int = 4  # as the embedded tiers declare it


async def test_the_service_says_how_many_it_handles() -> None:
    engine, service = engine_with("hello")
    conversation = engine.create()
    [e async for e in engine.stream(conversation.id, "Say hello")]
    assert len(service.offered[-1]) == len(engine.allowed_functions())  # declares nothing: all
    few = FewFunctions(["5"])
    engine = ConversationEngine(build_kernel(Settings(), chat_service=few).kernel)
    [e async for e in engine.stream(engine.create().id, "Add 2 and 3")]
    assert len(few.offered[-1]) == 4 and "Math-add" in few.offered[-1]
