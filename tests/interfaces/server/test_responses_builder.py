"""The Responses API's builder, without a server: how the engine's events become items and stream events."""

from __future__ import annotations

from openai.types.responses import Response

from kernel_app.base.usage import Usage
from kernel_app.conversation.events import Done, FunctionCallFinished, FunctionCallStarted, TextDelta
from kernel_app.conversation.store import Message, ToolCall
from kernel_app.interfaces.server.openai_responses import (
    ResponseBuilder,
    ResponsesRequest,
    dump,
    input_messages,
    stored_output,
)


def builder() -> ResponseBuilder:
    return ResponseBuilder("resp_1", ResponsesRequest(model="kernel-app", input="Hi"), 1.0)


def test_an_answer_cut_at_max_output_tokens_is_incomplete() -> None:
    build = builder()
    events = [*build.start(), *build.feed(TextDelta("Once upon"))]
    events += build.finish(Done("", "Once upon", Usage(3, 2), "length"))
    assert events[-1]["type"] == "response.incomplete"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "incomplete" and final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens" and final.output_text == "Once upon"


def test_text_before_a_call_is_its_own_message_item() -> None:
    build = builder()
    build.feed(TextDelta("Let me add."))
    build.feed(FunctionCallStarted("c1", "Math.add", {"a": 1, "b": 2}))
    build.feed(FunctionCallFinished("c1", "Math.add", {"a": 1, "b": 2}, "3"))
    build.feed(TextDelta("It is 3."))
    build.finish(Done("", "It is 3.", Usage(1, 1)))
    assert build.final is not None
    kinds = [(item.type, getattr(item, "status", None)) for item in build.final.output]
    assert kinds == [
        ("message", "completed"),
        ("function_call", "completed"),
        ("function_call_output", "completed"),
        ("message", "completed"),
    ]
    assert build.final.output_text == "Let me add.It is 3."


def test_an_empty_answer_is_still_a_message() -> None:
    build = builder()
    events = build.finish(Done("", "", Usage()))
    assert [e["type"] for e in events] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_a_stored_response_reads_back_from_its_last_turn() -> None:
    messages = [
        Message("user", "what is 2+3"),
        Message("assistant", "It is 5."),
        Message("user", "and 2+4?"),
        Message("assistant", "", tool_calls=(ToolCall("c1", "Math.add", {"a": 2, "b": 4}),)),
        Message("tool", "6 " * 150, name="Math.add", call_id="c1"),
        Message("assistant", "Six."),
    ]
    call, result, answer = stored_output(messages)
    assert call.name == "Math-add" and call.call_id == "c1" and result.call_id == "c1"
    assert len(result.output) == 200 and result.output.endswith("…")  # as the engine's summary cuts it
    assert dump(answer)["content"][0]["text"] == "Six."


def test_input_items_become_messages() -> None:
    messages = input_messages(
        [
            {"role": "user", "content": "2+3?"},
            {"type": "function_call", "call_id": "a", "name": "Math-add", "arguments": '{"a": 2, "b": 3}'},
            {"type": "function_call", "call_id": "b", "name": "Math-add", "arguments": '{"a": 3, "b": 2}'},
            {"type": "function_call_output", "call_id": "a", "output": "5"},
            {"type": "function_call_output", "call_id": "b", "output": "5"},
            {"role": "user", "content": "sure?"},
        ]
    )
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assert [c.function for c in messages[1].tool_calls] == ["Math.add", "Math.add"]  # one round: one message
    assert messages[2].name == "Math.add" and messages[3].call_id == "b"
