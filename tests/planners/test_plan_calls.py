"""Function calling you can trust (issue 10), over the loopback tool-call server and the real ``openai`` client.

Nothing with an effect runs without approval (READ runs; MODEL and WRITE only when ``approve_call``
says yes); a refused call is answered "not run: ..." so the model can still answer; a prompt
function's result goes back as its text; a model that never stops is a typed failure naming the
limit. The corpus scripts tool-call answers with invented names, malformed argument JSON and odd
values: each ends in the expected answer with exactly the expected functions run, or in a one-line
PlanningError.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel_app.base.effects import Effect
from kernel_app.kernel.builder import build_kernel
from planners import NOT_APPROVED, CallRequest, FunctionCallingPlanner, PlanningError, RoundLimitError
from tests.support.spies import count_invocations
from tests.support.tool_call_server import ToolCallServer

FINAL = "Here is your answer."


def nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


# (id, scripted answers before FINAL, functions expected to run)
CORPUS: list[tuple[str, list[Any], list[str]]] = [
    ("invented-function", [[("Email-send", {"to": "boss@example.com"})]], []),
    ("invented-plugin", [[("Shell-run", {"command": "rm -rf /"})]], []),
    ("dotted-name", [[("Math.add", {"a": 1, "b": 2})]], []),
    ("wrong-case-name", [[("math-ADD", {"a": 1, "b": 2})]], []),
    ("name-with-newline", [[("Math-a\ndd", {"a": 1, "b": 2})]], []),
    ("10kb-name", [[("X" * 10_000, {"a": 1})]], []),
    ("excluded-function", [[("Time-today", {})]], []),
    ("malformed-json", [[("Math-add", "{not json")]], []),
    ("cut-off-json", [[("Math-add", '{"a": 1, "b": ')]], []),
    ("arguments-a-list", [[("Math-add", "[1, 2]")]], []),
    ("arguments-a-string", [[("Math-add", '"a=1, b=2"')]], []),
    ("arguments-null", [[("Math-add", "null")]], []),
    ("arguments-empty", [[("Math-add", "")]], []),
    ("unknown-parameter", [[("Math-add", {"a": 1, "b": 2, "c": 3})]], []),
    ("missing-required", [[("Math-add", {"a": 1})]], []),
    ("null-required", [[("Math-add", {"a": None, "b": 2})]], []),
    ("nan-argument", [[("Math-add", '{"a": NaN, "b": 1}')]], []),
    ("infinity-argument", [[("Math-add", '{"a": Infinity, "b": 1}')]], []),
    ("1e999-argument", [[("Math-add", '{"a": 1e999, "b": 1}')]], []),
    ("deep-argument", [[("Text-upper", '{"input": ' + nested(30) + "}")]], []),
    ("lone-surrogate-argument", [[("Text-upper", '{"input": "\\ud83d"}')]], []),
    ("prompt-function-unapproved", [[("Writer-ShortPoem", {"input": "cats"})]], []),
    ("write-function-unapproved", [[("memory-save", {"input": "secret", "collection": "c"})]], []),
    ("native-model-function-unapproved", [[("BusinessThinking-SWOT", {"input": "a bakery"})]], []),
    ("read-function-runs", [[("Math-add", {"a": 110, "b": 990})]], ["Math.add"]),
    (
        "read-then-read",
        [[("Math-add", {"a": 1, "b": 2})], [("Text-upper", {"input": "3"})]],
        ["Math.add", "Text.upper"],
    ),
    ("twenty-calls-in-one-round", [[("Math-add", {"a": i, "b": 1}) for i in range(20)]], ["Math.add"] * 20),
    (
        "mixed-round",
        [[("Email-send", {}), ("Math-add", {"a": 1, "b": 2}), ("Writer-ShortPoem", {"input": "x"}), ("Math-add", "{")]],
        ["Math.add"],
    ),
    ("a-failing-read-function", [[("Math-divide", {"a": 1, "b": 0})]], ["Math.divide"]),
    ("huge-read-argument", [[("Text-length", {"input": "x" * 200_000})]], ["Text.length"]),
]


NOT_FINITE = " is not a finite number (NaN, Infinity and numbers beyond 1e308 are not allowed)"
# What our filter answers for the calls it refuses (semantic-kernel refuses invented names and bad JSON).
NOTES = {
    "null-required": "not run: required argument 'a' is null: give it a value",
    "nan-argument": "not run: argument 'a': nan" + NOT_FINITE,
    "infinity-argument": "not run: argument 'a': inf" + NOT_FINITE,
    "1e999-argument": "not run: argument 'a': inf" + NOT_FINITE,
    "deep-argument": "not run: argument 'input': the value is nested more than 8 lists/objects deep",
    "lone-surrogate-argument": (
        "not run: argument 'input': text '\\ud83d' is not valid text (it holds a lone surrogate)"
    ),
    "prompt-function-unapproved": NOT_APPROVED,
    "write-function-unapproved": NOT_APPROVED,
    "native-model-function-unapproved": NOT_APPROVED,
}


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch, tool_server: ToolCallServer, tmp_path):
    from kernel_app.base.config import load_settings

    monkeypatch.setenv("OPENAI_BASE_URL", tool_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("KERNEL_APP_MEMORY_DIR", str(tmp_path / "store"))
    return build_kernel(load_settings(service="openai", model="tool-model")).kernel


def assert_one_line(error: BaseException) -> None:
    text = str(error)
    assert "\n" not in text and len(text) < 2_000, text[:300]


def test_the_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 30 and len({name for name, *_ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("name", "answers", "ran"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_tool_call_answer_runs_only_what_may_run(
    name: str, answers: list[Any], ran: list[str], kernel, tool_server: ToolCallServer
) -> None:
    invoked = count_invocations(kernel)
    tool_server.answers.extend([*answers, FINAL])
    result = await FunctionCallingPlanner(kernel, excluded=["Time"]).run("do the thing")
    assert result.answer == FINAL
    assert invoked == ran and result.trace.functions == ran
    sent_back = [m for i in range(1, len(tool_server.bodies)) for m in tool_server.tool_messages(i)]
    calls = sum(len(a) for a in answers)
    assert len(tool_server.tool_messages(len(tool_server.bodies) - 1)) >= 1
    assert len(sent_back) >= calls  # every call got a tool message back
    if name in NOTES:  # refused by our filter: the model is told why
        assert [c.note for c in result.calls if c.refused] == [NOTES[name]]
        assert NOTES[name] in sent_back
    for call in result.calls:
        assert call.refused == (call.note != "")
        if call.refused:
            assert call.note.startswith("not run: ") and "\n" not in call.note
        assert "\n" not in call.call_text() and len(call.call_text()) < 400
        json.dumps(call.to_dict(), allow_nan=False)  # --json can print every call
    assert not any("ChatMessageContent(" in m for m in sent_back)


async def test_a_model_that_never_stops_is_a_typed_failure_naming_the_limit(kernel, tool_server) -> None:
    tool_server.default = [("Math-add", {"a": 1, "b": 1})]
    with pytest.raises(RoundLimitError) as caught:
        await FunctionCallingPlanner(kernel, max_rounds=3).run("keep adding forever")
    assert caught.value.max_rounds == 3 and "limit of 3 round(s)" in str(caught.value)
    assert isinstance(caught.value, PlanningError) and caught.value.exit_code == 3
    assert_one_line(caught.value)
    assert len(tool_server.bodies) == 4  # three rounds with tools, the last without


async def test_an_empty_final_answer_is_a_planning_error(kernel, tool_server) -> None:
    tool_server.answers.extend([[("Math-add", {"a": 1, "b": 1})], ""])
    with pytest.raises(PlanningError, match="without an answer"):
        await FunctionCallingPlanner(kernel).run("add one and one")


async def test_a_prompt_function_result_goes_back_as_its_text(kernel, tool_server) -> None:
    # semantic-kernel 1.45 would send str() of a list of ChatMessageContent (~1 KB of reprs).
    tool_server.answers.extend([[("Writer-ShortPoem", {"input": "cats"})], "Roses are red, cats are too", "Done."])
    result = await FunctionCallingPlanner(kernel, approve_call=lambda request: True).run("a poem about cats")
    assert result.answer == "Done." and result.trace.functions == ["Writer.ShortPoem"]
    assert tool_server.tool_messages(2) == ["Roses are red, cats are too"]
    assert result.calls[0].output == "Roses are red, cats are too"


async def test_only_model_and_write_calls_are_asked_and_refusals_are_told(kernel, tool_server) -> None:
    asked: list[CallRequest] = []

    def approve(request: CallRequest) -> bool:
        asked.append(request)
        return request.function == "Writer.ShortPoem"

    tool_server.answers.extend(
        [
            [("Math-add", {"a": 1, "b": 2}), ("memory-save", {"input": "x", "collection": "c"})],
            [("Writer-ShortPoem", {"input": "three"})],
            "a poem",
            "All done.",
        ]
    )
    invoked = count_invocations(kernel)
    result = await FunctionCallingPlanner(kernel, approve_call=approve).run("add, save, then a poem")
    assert [(r.function, r.effect, r.round) for r in asked] == [
        ("memory.save", Effect.WRITE, 0),
        ("Writer.ShortPoem", Effect.MODEL, 1),
    ]
    assert invoked == ["Math.add", "Writer.ShortPoem"] and result.answer == "All done."
    assert sorted(tool_server.tool_messages(1)) == ["3", NOT_APPROVED]
    refused = [c for c in result.calls if c.refused]
    assert [(c.function, c.note) for c in refused] == [("memory.save", NOT_APPROVED)]


async def test_without_approval_memory_save_writes_nothing(kernel, tool_server) -> None:
    recall = kernel.get_function("memory", "recall")
    tool_server.answers.extend([[("memory-save", {"input": "my PIN is 1234", "collection": "notes"})], "Saved."])
    result = await FunctionCallingPlanner(kernel, included=["memory"]).run("remember my PIN")
    assert result.answer == "Saved." and result.trace.steps == []
    assert result.calls[0].refused and result.calls[0].note == NOT_APPROVED
    found = await kernel.invoke(recall, input="PIN", collection="notes", min_relevance=0.0)
    assert "1234" not in str(found)


async def test_an_async_approval_callback_and_its_failure(kernel, tool_server) -> None:
    async def approve(request: CallRequest) -> bool:
        raise KeyError("the prompt was closed")

    tool_server.answers.extend([[("Writer-ShortPoem", {"input": "x"})], "never"])
    with pytest.raises(KeyError, match="prompt was closed"):  # itself, not "the chat service failed"
        await FunctionCallingPlanner(kernel, approve_call=approve).run("a poem")


async def test_a_lone_surrogate_in_the_answer_is_printable(kernel, tool_server) -> None:
    tool_server.answers.append("The answer \ud83d is 42")  # sent as the JSON escape, read back as a lone surrogate
    result = await FunctionCallingPlanner(kernel).run("what is it?")
    assert result.answer == "The answer \ufffd is 42"


async def test_a_lone_surrogate_in_a_function_result_does_not_break_the_next_request(kernel, tool_server) -> None:
    # A function may return text with a lone surrogate; the next request to the model must still encode.
    from semantic_kernel.functions import kernel_function

    class Odd:
        @kernel_function(name="odd", description="Returns broken text.")
        def odd(self) -> str:
            return "broken \ud83d text"

    kernel.add_plugin(Odd(), plugin_name="Odd")
    tool_server.answers.extend([[("Odd-odd", {})], "ok"])
    result = await FunctionCallingPlanner(kernel, approve_call=lambda request: True).run("odd")
    assert result.answer == "ok" and tool_server.tool_messages(1) == ["broken \ufffd text"]
