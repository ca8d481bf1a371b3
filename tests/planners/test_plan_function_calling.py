"""The function-calling planner, over a loopback server that answers with OpenAI tool calls.

The server is tests/support/tool_call_server.py (the shared text-only stub cannot answer with tool
calls); semantic-kernel's real OpenAI connector and the real ``openai`` client drive it, so the tools
sent, the calls made and the results returned are all the real wire format.
"""

from __future__ import annotations

import json

import pytest
from semantic_kernel import Kernel
from semantic_kernel.functions import kernel_function

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from planners import FunctionCallingPlanner, PlanningError
from tests.support.spies import count_invocations
from tests.support.tool_call_server import ToolCallServer


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch, tool_server: ToolCallServer):
    from kernel_app.base.config import load_settings

    monkeypatch.setenv("OPENAI_BASE_URL", tool_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return build_kernel(load_settings(service="openai", model="tool-model")).kernel


async def test_calls_are_made_and_returned_as_a_trace(kernel, tool_server: ToolCallServer) -> None:
    invoked = count_invocations(kernel)
    tool_server.answers.extend(
        [
            [("Math-add", {"a": 110, "b": 990})],
            [("Text-upper", {"input": "the sum is 1100"})],
            "The sum is 1100 (THE SUM IS 1100).",
        ]
    )
    planner = FunctionCallingPlanner(kernel, max_rounds=5, excluded=["Time"])
    answer, trace = await planner.run("What is the sum of 110 and 990? Shout it.")
    assert answer == "The sum is 1100 (THE SUM IS 1100)."
    assert [(s.function, s.args, s.output) for s in trace.steps] == [
        ("Math.add", {"a": 110, "b": 990}, "call1"),
        ("Text.upper", {"input": "the sum is 1100"}, "call2"),
    ]
    assert invoked == ["Math.add", "Text.upper"]
    # The allow-list went out as the tools, excluded functions left out.
    tools = tool_server.tool_names(0)
    assert "Math-add" in tools and "Writer-Translate" in tools and not any(t.startswith("Time-") for t in tools)
    assert tool_server.tool_messages(1) == ["1100"]  # the result went back to the model


async def test_full_result_has_outputs_and_usage(kernel, tool_server: ToolCallServer) -> None:
    tool_server.answers.extend([[("Math-multiply", {"a": 6, "b": 7})], "42"])
    result = await FunctionCallingPlanner(kernel).run("six times seven")
    assert [(c.function, c.output, c.round) for c in result.calls] == [("Math.multiply", "42", 0)]
    assert result.usage.calls == 2 and result.usage.completion_tokens == 10
    assert result.trace.goal == "six times seven"


async def test_functions_outside_the_allow_list_never_run(kernel, tool_server: ToolCallServer) -> None:
    invoked = count_invocations(kernel)
    tool_server.answers.extend(
        [
            [("Time-today", {}), ("Shell-run", {"command": "rm -rf /"}), ("Math-add", {"a": 1, "b": 2})],
            "done",
        ]
    )
    answer, trace = await FunctionCallingPlanner(kernel, included=["Math"]).run("add one and two")
    assert invoked == ["Math.add"] and trace.functions == ["Math.add"] and answer == "done"
    assert sorted(tool_server.tool_names(0)) == ["Math-add", "Math-divide", "Math-multiply", "Math-subtract"]
    refusals = tool_server.tool_messages(1)
    assert len(refusals) == 3 and sum("not part of the provided tools" in r for r in refusals) == 2


async def test_bad_arguments_are_sent_back_not_run(kernel, tool_server: ToolCallServer) -> None:
    invoked = count_invocations(kernel)
    tool_server.answers.extend([[("Math-add", "{not json"), ("Math-add", {"a": 1})], "gave up"])
    answer, trace = await FunctionCallingPlanner(kernel).run("add")
    assert invoked == [] and trace.steps == [] and answer == "gave up"
    assert len(tool_server.tool_messages(1)) == 2


async def test_rounds_are_bounded(kernel, tool_server: ToolCallServer) -> None:
    tool_server.default = [("Math-add", {"a": 1, "b": 1})]
    tool_server.answers.extend([[("Math-add", {"a": 1, "b": 1})]] * 2 + ["final answer"])
    answer, trace = await FunctionCallingPlanner(kernel, max_rounds=2).run("keep adding forever")
    assert len(trace.steps) == 2 and answer == "final answer"
    assert len(tool_server.bodies) == 3  # two rounds with tools, then one without
    assert tool_server.tool_names(0) and not tool_server.tool_names(2)


async def test_needs_a_service_that_calls_functions() -> None:
    kernel = build_kernel(Settings(), chat_service=ScriptedChatCompletion()).kernel
    with pytest.raises(PlanningError, match="cannot call functions"):
        await FunctionCallingPlanner(kernel).run("anything")
    with pytest.raises(PlanningError, match="no functions"):
        await FunctionCallingPlanner(kernel, included=[]).run("anything")


async def test_the_callers_kernel_is_left_as_it_was(kernel, tool_server: ToolCallServer) -> None:
    before = len(kernel.auto_function_invocation_filters)
    tool_server.answers.append("no calls needed")
    await FunctionCallingPlanner(kernel).run("hello")
    assert len(kernel.auto_function_invocation_filters) == before


class KernelTakingPlugin:
    @kernel_function(name="inner", description="A native function that calls the kernel itself.")
    async def inner(self, kernel: Kernel, input: str) -> str:
        return input


async def test_functions_taking_the_kernel_are_left_off_the_tools(kernel, tool_server: ToolCallServer) -> None:
    # Their tool schema would describe the Kernel object (and cannot be serialised): semantic-kernel
    # needs {"include_in_function_choices": False} on such a parameter. The planner skips them.
    kernel.add_plugin(KernelTakingPlugin(), plugin_name="Inner")
    tool_server.answers.append("fine")
    answer, _ = await FunctionCallingPlanner(kernel).run("anything")
    assert answer == "fine" and "Inner-inner" not in tool_server.tool_names(0)
    assert "Math-add" in tool_server.tool_names(0)


async def test_function_calling_over_azure_with_an_api_key(monkeypatch: pytest.MonkeyPatch, tool_server) -> None:
    from kernel_app.base.config import load_settings

    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", tool_server.root_url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key")
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "2024-10-21")
    kernel = build_kernel(load_settings(service="azure", model="planner-deployment")).kernel
    invoked = count_invocations(kernel)
    tool_server.answers.extend([[("Math-add", {"a": 110, "b": 990})], "The sum is 1100."])
    answer, trace = await FunctionCallingPlanner(kernel, included=["Math"]).run("What is the sum of 110 and 990?")
    assert answer == "The sum is 1100." and trace.functions == ["Math.add"] and invoked == ["Math.add"]
    assert all(p.startswith("/openai/deployments/planner-deployment/chat/completions?") for p in tool_server.paths)
    assert all("api-version=2024-10-21" in p for p in tool_server.paths)
    assert tool_server.headers[0]["api-key"] == "azure-key"
    assert sorted(tool_server.tool_names(0)) == ["Math-add", "Math-divide", "Math-multiply", "Math-subtract"]
    assert tool_server.tool_messages(1) == ["1100"]


async def test_the_model_can_answer_from_memory(monkeypatch: pytest.MonkeyPatch, tool_server, tmp_path) -> None:
    pytest.importorskip("kernel_app.providers.embedder.generator")
    from kernel_app.base.config import load_settings

    monkeypatch.setenv("OPENAI_BASE_URL", tool_server.base_url)
    monkeypatch.setenv("KERNEL_APP_MEMORY_DIR", str(tmp_path / "store"))
    kernel = build_kernel(load_settings(service="openai", model="tool-model")).kernel
    await kernel.invoke(
        kernel.get_function("memory", "save"),
        input="Catering for office lunches would bring extra sales on quiet weekdays.",
        collection="SWOT",
        id="opportunity-0",
    )
    invoked = count_invocations(kernel)
    tool_server.answers.extend(
        [
            [("memory-ask", {"input": "How can we sell more on weekdays?", "collection": "SWOT"})],
            json.dumps({"answer": "Cater office lunches.", "sources": ["opportunity-0"]}),  # memory.ask's own call
            "Cater office lunches, say your notes.",
        ]
    )
    asked: list[str] = []
    planner = FunctionCallingPlanner(
        kernel, included=["memory"], approve_call=lambda request: asked.append(request.call_text()) or True
    )
    answer, trace = await planner.run("How can we sell more on weekdays?")
    assert asked == ['memory.ask(input="How can we sell more on weekdays?", collection="SWOT")']  # MODEL: asked
    assert invoked == ["memory.ask"] and trace.functions == ["memory.ask"]
    assert answer == "Cater office lunches, say your notes."
    assert "memory-ask" in tool_server.tool_names(0)  # its injected kernel parameter is not in the schema
    assert tool_server.tool_messages(2) == ["Cater office lunches.\n\nSources: [opportunity-0]"]
