"""Running functions and chains on the scripted chat service."""

from __future__ import annotations

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.errors import FunctionInvocationError, FunctionNotFoundError, MissingVariableError
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.scripted import ScriptedChatCompletion


def kernel_with(*answers: str):
    service = ScriptedChatCompletion(answers)
    built = build_kernel(Settings(), chat_service=service)
    return built, service


async def test_chain_passes_each_output_as_next_input() -> None:
    built, service = kernel_with("A short summary.", "| Forces (cleaning) |")
    names = ("Writer.Summarize", "BusinessThinking.ShiftDomain", "Text.upper")
    functions = [resolve_function(built.kernel, n) for n in names]
    result = await run_chain(built.kernel, functions, input="a pizza shop", variables={"domain": "cleaning services"})
    assert [s.function for s in result.steps] == list(names)
    assert "a pizza shop" in service.requests[0].prompt
    second = service.requests[1].prompt
    assert "A short summary." in second and "cleaning services" in second
    assert result.result == "| FORCES (CLEANING) |"
    # Usage: the scripted service counts words; the native step adds nothing.
    assert result.usage.calls == 2
    assert result.usage.completion_tokens == 3 + 4  # words of the two answers


async def test_missing_required_variable_is_a_clear_error_not_an_empty_prompt() -> None:
    built, service = kernel_with("unused")
    function = resolve_function(built.kernel, "BusinessThinking.ShiftDomain")
    with pytest.raises(MissingVariableError) as caught:
        await run_chain(built.kernel, [function], input="a SWOT")
    assert caught.value.function == "BusinessThinking.ShiftDomain" and caught.value.variable == "domain"
    assert "--var" not in str(caught.value)  # the same message on every surface; the CLI adds its hint
    assert "--var domain=VALUE" in caught.value.cli_hint
    assert service.requests == []  # the model was never asked


async def test_optional_variable_uses_its_default() -> None:
    built, service = kernel_with("table")
    function = resolve_function(built.kernel, "BusinessThinking.SWOT")
    await run_chain(built.kernel, [function], input="a bakery")
    assert "a bakery" in service.requests[0].prompt


async def test_native_functions_run_without_a_model() -> None:
    built, service = kernel_with()
    add = resolve_function(built.kernel, "math.ADD")  # names are case-insensitive
    result = await run_chain(built.kernel, [add], variables={"a": "110", "b": "990"})
    assert result.result == "1100" and service.requests == []


async def test_streaming_delivers_chunks_and_the_same_text() -> None:
    built, _ = kernel_with("one two three four")
    chunks: list[str] = []
    function = resolve_function(built.kernel, "Writer.Summarize")
    result = await run_chain(built.kernel, [function], input="text", on_chunk=chunks.append)
    assert len(chunks) == 4 and "".join(chunks) == "one two three four" == result.result
    assert result.usage.completion_tokens == 4


async def test_function_failure_names_the_function() -> None:
    built, _ = kernel_with()
    divide = resolve_function(built.kernel, "Math.divide")
    with pytest.raises(FunctionInvocationError) as caught:
        await run_chain(built.kernel, [divide], variables={"a": "1", "b": "0"})
    assert str(caught.value).startswith("Math.divide failed:") and "divide by zero" in str(caught.value)


def test_unknown_function_suggests_close_names() -> None:
    built, _ = kernel_with()
    with pytest.raises(FunctionNotFoundError, match=r"did you mean BusinessThinking\.SWOT"):
        resolve_function(built.kernel, "BusinessThinking.SWOTT")
    with pytest.raises(FunctionNotFoundError, match=r"not of the form Plugin\.Function"):
        resolve_function(built.kernel, "SWOT")


async def test_streamed_chain_shows_native_step_output() -> None:
    built, _ = kernel_with("short text")
    chunks: list[str] = []
    chain = [resolve_function(built.kernel, n) for n in ("Writer.Summarize", "Text.upper")]
    result = await run_chain(built.kernel, chain, input="long text", on_chunk=chunks.append)
    assert "".join(chunks) == "short text\nSHORT TEXT" and result.result == "SHORT TEXT"
