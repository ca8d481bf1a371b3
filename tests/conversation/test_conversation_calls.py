"""A model's function call is checked before it runs; a result that is the answer is shown as it is.

Qwen2.5-Coder-1.5B, asked in words for a SWOT over the OpenAI-compatible endpoint, called
``BusinessThinking-SWOT`` without its ``input`` (and, another time, with an interview it made up as
``answers``, then retold the four tables in a paragraph). The scripted service replays those answers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel_app.conversation import Done, FunctionCallFinished, TextDelta
from kernel_app.conversation.calls import checked_arguments, is_answer, result_is_answer
from tests.support.tool_scripted import engine_with, tools

DRAFT = (
    "### Strengths\n- Fresh bread (baked at dawn)\n### Weaknesses\n- Small shop\n"
    "### Opportunities\n- Tourists\n### Threats\n- Supermarkets"
)
ASK = "Do a SWOT analysis of a bakery in Lyon"


def approve_all(_request: Any) -> bool:
    return True


def function(engine: Any, name: str) -> Any:
    plugin, _, short = name.partition(".")
    return engine.kernel.get_function(plugin, short)


async def test_a_call_without_its_required_input_is_told_what_to_pass_and_the_retry_runs() -> None:
    engine, service = engine_with(
        tools(("BusinessThinking-SWOT", {})),
        tools(("BusinessThinking-SWOT", {"input": "a bakery in Lyon"})),
        DRAFT,
    )
    asked: list[str] = []

    def approve(request: Any) -> bool:
        asked.append(request.function)
        return True

    result = await engine.send(engine.create().id, ASK, approve=approve)
    first, second = result.calls
    assert not first.ok and second.ok
    told = service.tool_results[1][0]
    # which argument, what it is, and the call to write: the model's second chance
    assert "needs the argument 'input' (A description of the business" in told
    assert '{"name": "BusinessThinking-SWOT", "arguments": {"input": "..."}}' in told
    assert "Nothing ran" in told
    assert asked == ["BusinessThinking.SWOT"]  # the call that could not run asked nobody
    assert "a bakery in Lyon" in service.requests[2].prompt  # the draft was written for the retry's input
    assert result.text.startswith("### Strengths") and service.remaining == 0


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "needs the argument 'input'"),
        ({"input": "   "}, "needs the argument 'input'"),  # blank is not given
        ({"input": None}, "needs the argument 'input'"),
        ({"_unparsed": '{"input": "a bakery'}, 'must be a JSON object, and "{\\"input\\": \\"a bakery" is not one'),
    ],
)
async def test_odd_arguments_are_refused_with_the_call_to_write(arguments: dict[str, Any], expected: str) -> None:
    engine, _ = engine_with()
    checked, problem = checked_arguments(function(engine, "BusinessThinking.SWOT"), "BusinessThinking-SWOT", arguments)
    assert expected in problem and problem.startswith("error: ")
    assert problem.endswith('{"name": "BusinessThinking-SWOT", "arguments": {"input": "..."}}')
    assert checked == arguments


def test_the_example_keeps_what_the_model_gave_and_leaves_out_what_the_function_does_not_take() -> None:
    engine, _ = engine_with()
    translate = function(engine, "Writer.Translate")
    _, problem = checked_arguments(translate, "Writer-Translate", {"language": "French", "colour": "red"})
    example = json.loads(problem[problem.index("{") :])
    assert example == {"name": "Writer-Translate", "arguments": {"language": "French", "input": "..."}}
    _, problem = checked_arguments(function(engine, "Math.add"), "Math-add", {})
    assert "needs the arguments 'a'" in problem and "'b'" in problem and "set from the user's request" in problem


def test_a_near_miss_name_is_read_as_the_parameter_and_a_complete_call_passes() -> None:
    engine, _ = engine_with()
    swot = function(engine, "BusinessThinking.SWOT")
    assert checked_arguments(swot, "BusinessThinking-SWOT", {"business": "a bakery"}) == ({"input": "a bakery"}, "")
    assert checked_arguments(swot, "BusinessThinking-SWOT", {"input": "a bakery"}) == ({"input": "a bakery"}, "")
    assert checked_arguments(function(engine, "Time.today"), "Time-today", {}) == ({}, "")


@pytest.mark.parametrize("arguments", ["a bakery in Lyon", ["a bakery"], 5])
async def test_arguments_that_are_json_but_not_an_object_are_told_and_retried(arguments: Any) -> None:
    engine, service = engine_with(
        tools(("BusinessThinking-SWOT", arguments)), tools(("BusinessThinking-SWOT", {"input": "a bakery"})), DRAFT
    )
    result = await engine.send(engine.create().id, ASK, approve=approve_all)
    assert [c.ok for c in result.calls] == [False, True] and result.text.startswith("### Strengths")
    told = service.tool_results[1][0]
    assert "must be a JSON object" in told and told.endswith('"arguments": {"input": "..."}}')


async def test_a_repeated_bad_call_is_not_retried_forever() -> None:
    engine, service = engine_with(tools(("BusinessThinking-SWOT", {})), tools(("BusinessThinking-SWOT", {})), "Sorry.")
    result = await engine.send(engine.create().id, ASK, approve=approve_all)
    assert [c.ok for c in result.calls] == [False] and result.text == "Sorry."
    assert service.offered[-1] is None  # the repeat made the engine ask for an answer without tools


async def test_the_swot_is_the_answer_as_it_is_and_the_model_is_not_asked_to_retell_it() -> None:
    for stream in (False, True):
        engine, service = engine_with(tools(("BusinessThinking-SWOT", {"input": "a bakery in Lyon"})), DRAFT)
        conversation = engine.create()
        events = [e async for e in engine.stream(conversation.id, ASK, approve=approve_all, stream=stream)]
        done = events[-1]
        assert isinstance(done, Done)
        [finished] = [e for e in events if isinstance(e, FunctionCallFinished)]
        assert finished.ok and done.text.startswith("### Strengths") and done.text.count("|") > 20, stream
        assert "| Fresh bread (baked at dawn) |" in done.text and "| Supermarkets |  |" in done.text
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.text
        # the call, then the draft: no third request, where the model would get the tables back to retell
        assert len(service.requests) == 2 and service.remaining == 0
        stored = engine.store.messages(conversation.id)
        assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
        assert stored[-1].content == done.text == stored[-2].content
        assert done.usage.completion_tokens > 0  # the draft's tokens are counted


async def test_a_swot_that_is_not_the_last_call_of_its_round_leaves_the_answer_to_the_model() -> None:
    engine, service = engine_with(
        tools(("BusinessThinking-SWOT", {"input": "a coffee shop"}), ("Text-upper", {"input": "coffee"})),
        DRAFT,
        "Your SWOT, and COFFEE.",
    )
    result = await engine.send(
        engine.create().id, "A SWOT of a coffee shop, and COFFEE in capitals", approve=approve_all
    )
    assert [c.function for c in result.calls] == ["BusinessThinking.SWOT", "Text.upper"]
    assert result.text == "Your SWOT, and COFFEE."
    assert service.tool_results[-1][1] == "COFFEE" and service.tool_results[-1][0].startswith("### Strengths")


async def test_after_a_refused_or_failed_swot_the_model_answers() -> None:
    engine, _ = engine_with(tools(("BusinessThinking-SWOT", {"input": "a bakery"})), "I may not run it.")
    result = await engine.send(engine.create().id, ASK)  # no approval callback: refused
    assert result.text == "I may not run it." and not result.calls[0].ok


async def test_a_failed_swot_is_not_shown_and_functions_say_whether_their_result_is_the_answer() -> None:
    engine, _ = engine_with(tools(("Math-divide", {"a": 1, "b": 0})), "You cannot divide by zero.")
    result = await engine.send(engine.create().id, "1/0?")
    assert result.text == "You cannot divide by zero."
    assert is_answer(function(engine, "BusinessThinking.SWOT"))
    assert not is_answer(function(engine, "Writer.Summarize")) and not is_answer(function(engine, "Math.add"))

    @result_is_answer
    def marked() -> None: ...

    class Fake:
        method = marked

    assert is_answer(Fake())


async def test_an_empty_answer_after_calls_is_the_last_result_not_nothing() -> None:
    for stream in (False, True):
        engine, _ = engine_with(
            tools(("Text-upper", {"input": "pizza every day"})), tools(("Math-divide", {"a": 1, "b": 0})), " "
        )
        events = [e async for e in engine.stream(engine.create().id, "Shout it", stream=stream)]
        done = events[-1]
        assert isinstance(done, Done) and done.text == "PIZZA EVERY DAY", stream  # the failed divide is not it
        assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip() == "PIZZA EVERY DAY"
    engine, _ = engine_with(" ")
    assert (await engine.send(engine.create().id, "Hello")).text == " "  # no call ran: nothing to show
