"""A conversation turn as OpenTelemetry sees it: one trace, the turn's span over its model and function calls,
with the GenAI semantic conventions' names; message contents only when opted in; the client histograms.

The scripted service answers first with a call of Math.add, then with text: the engine's real loop runs.
"""

from __future__ import annotations

import json

import pytest

from kernel_app.base import telemetry
from kernel_app.conversation import FunctionCallStarted
from tests.support.telemetry import parent_of, recording
from tests.support.tool_scripted import engine_with, tools

QUESTION = "What is 2 plus 3?"
ANSWER = "2 plus 3 is 5."


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_turn_is_one_trace_of_its_model_and_function_calls(
    stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(telemetry.CAPTURE_CONTENT_ENV, raising=False)
    engine, _ = engine_with(tools(("Math-add", {"a": 2, "b": 3})), ANSWER)
    conversation = engine.create()
    with recording() as recorded:
        events = [e async for e in engine.stream(conversation.id, QUESTION, stream=stream)]
        spans = recorded.spans
        duration = recorded.points(telemetry.OPERATION_DURATION)
        tokens = recorded.points(telemetry.TOKEN_USAGE)
    call_id = next(e.call_id for e in events if isinstance(e, FunctionCallStarted))

    (turn,) = recorded.named("invoke_agent")
    assert turn.name == "invoke_agent kernel-app" and turn.parent is None
    assert turn.attributes[telemetry.OPERATION] == "invoke_agent"
    assert turn.attributes[telemetry.CONVERSATION_ID] == conversation.id
    assert turn.attributes[telemetry.PROVIDER] == "kernel_app.scripted"
    assert tuple(turn.attributes[telemetry.FINISH_REASONS]) == ("stop",)
    assert {s.context.trace_id for s in spans} == {turn.context.trace_id}  # one trace

    chats = recorded.named("chat ")
    assert len(chats) == 2 and all(parent_of(c) == turn.context.span_id for c in chats)
    first, second = sorted(chats, key=lambda s: s.start_time or 0)
    model = engine.model
    for chat in chats:
        assert chat.name == f"chat {model}"
        assert chat.attributes[telemetry.OPERATION] == "chat"
        assert chat.attributes[telemetry.PROVIDER] == "kernel_app.scripted"
        assert chat.attributes[telemetry.REQUEST_MODEL] == model
        assert chat.attributes[telemetry.RESPONSE_MODEL] == model
        assert chat.attributes[telemetry.CONVERSATION_ID] == conversation.id
        assert telemetry.INPUT_MESSAGES not in chat.attributes and telemetry.OUTPUT_MESSAGES not in chat.attributes
    assert tuple(first.attributes[telemetry.FINISH_REASONS]) == ("tool_calls",)
    assert tuple(second.attributes[telemetry.FINISH_REASONS]) == ("stop",)
    # The scripted service counts words as tokens: the answer has five.
    assert second.attributes[telemetry.OUTPUT_TOKENS] == 5 and second.attributes[telemetry.INPUT_TOKENS] > 0

    (tool,) = recorded.named("execute_tool")
    assert tool.name == "execute_tool Math.add" and parent_of(tool) == turn.context.span_id
    assert tool.attributes[telemetry.TOOL_NAME] == "Math.add"
    assert tool.attributes[telemetry.TOOL_CALL_ID] == call_id
    assert first.end_time <= tool.start_time <= tool.end_time <= second.start_time  # in the order they ran

    assert len(duration) == 1 and duration[0].count == 2  # both model calls, one attribute set
    assert duration[0].attributes[telemetry.OPERATION] == "chat"
    assert duration[0].attributes[telemetry.RESPONSE_MODEL] == model
    by_type = {p.attributes[telemetry.TOKEN_TYPE]: p for p in tokens}
    assert set(by_type) == {"input", "output"} and by_type["output"].sum == 5


async def test_message_contents_are_on_the_spans_only_when_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(telemetry.CAPTURE_CONTENT_ENV, "true")
    engine, _ = engine_with(tools(("Math-add", {"a": 2, "b": 3})), ANSWER)
    with recording() as recorded:
        await engine.send(engine.create().id, QUESTION)
    first, second = sorted(recorded.named("chat "), key=lambda s: s.start_time or 0)
    asked = json.loads(str(first.attributes[telemetry.INPUT_MESSAGES]))
    assert asked[-1] == {"role": "user", "parts": [{"type": "text", "content": QUESTION}]}
    called = json.loads(str(first.attributes[telemetry.OUTPUT_MESSAGES]))
    assert called[0]["finish_reason"] == "tool_call"  # the schema's enum; the span attribute says tool_calls
    assert called[0]["parts"][0]["type"] == "tool_call" and called[0]["parts"][0]["arguments"] == {"a": 2, "b": 3}
    result = json.loads(str(second.attributes[telemetry.INPUT_MESSAGES]))[-1]
    assert result["role"] == "tool" and result["parts"][0] == {
        "type": "tool_call_response",
        "id": called[0]["parts"][0]["id"],
        "response": "5",
    }
    answered = json.loads(str(second.attributes[telemetry.OUTPUT_MESSAGES]))
    assert answered == [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}]


async def test_a_failing_model_call_marks_its_span_and_the_turn() -> None:
    engine, service = engine_with()  # nothing scripted: the model call fails
    with recording() as recorded:
        result = await engine.send(engine.create().id, QUESTION)
        duration = recorded.points(telemetry.OPERATION_DURATION)
    assert result.error is not None and service.remaining == 0
    (chat,) = recorded.named("chat ")
    (turn,) = recorded.named("invoke_agent")
    assert chat.status.status_code.name == "ERROR" and chat.attributes[telemetry.ERROR_TYPE]
    assert turn.status.status_code.name == "ERROR"
    assert duration[0].attributes[telemetry.ERROR_TYPE] == chat.attributes[telemetry.ERROR_TYPE]


async def test_off_records_nothing_and_the_turn_runs_as_before() -> None:
    engine, _ = engine_with(tools(("Math-add", {"a": 2, "b": 3})), ANSWER)
    assert not telemetry.active()
    result = await engine.send(engine.create().id, QUESTION)
    assert result.text == ANSWER and result.calls[0].result == "5"


async def test_a_turn_names_its_user_only_where_one_is_set() -> None:
    engine, _ = engine_with("Hello, Megan.", "Hello again.")
    conversation = engine.create()
    with recording() as recorded:
        with telemetry.as_enduser("entra:tenant:object"):
            await engine.send(conversation.id, "Hi")
        await engine.send(conversation.id, "Hi again")  # the CLI and the REPL: no user
    first, second = sorted(recorded.named("invoke_agent"), key=lambda s: s.start_time or 0)
    assert first.attributes[telemetry.ENDUSER_ID] == "entra:tenant:object"
    assert telemetry.ENDUSER_ID not in second.attributes
