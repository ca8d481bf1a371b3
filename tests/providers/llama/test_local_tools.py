"""Function calling on the embedded model's service (kernel_app.providers.llama.tools), without the model.

The request llama.cpp gets from a ChatHistory with tools, calls and results; the calls read back from
its answer (streamed ``tool_calls`` fragments, or a call object the model wrote as text); and
semantic-kernel's auto-invoke loop over a service whose llama.cpp is replaced by a scripted one that
records every request. The real model runs in tests/providers/llama/test_local_model_smoke.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from semantic_kernel import Kernel
from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior
from semantic_kernel.contents import (
    ChatHistory,
    ChatMessageContent,
    FunctionCallContent,
    FunctionResultContent,
    TextContent,
)
from semantic_kernel.contents.utils.author_role import AuthorRole
from semantic_kernel.contents.utils.finish_reason import FinishReason
from semantic_kernel.exceptions import ServiceInvalidExecutionSettingsError
from semantic_kernel.functions import KernelArguments

from kernel_app.providers.llama.service import (
    LocalLlamaChatCompletion,
    LocalLlamaPromptExecutionSettings,
    llama_request,
)
from kernel_app.providers.llama.tools import (
    HeldText,
    StreamedCalls,
    call_arguments,
    calls_in_text,
    could_be_call,
    llama_messages,
    result_text,
)
from plugins.Math.math_plugin import MathPlugin
from tests.support.fake_llama import ADD_TOOL, llama_chunks, scripted_llama  # noqa: F401 (the fake llama.cpp fixture ``scripted``)

OFFERED = {"Math-add", "Math-multiply"}


# region the request


def test_the_history_goes_to_llama_cpp_in_openai_shape() -> None:
    history = ChatHistory()
    history.add_system_message("Be brief.")
    history.add_user_message("What is 110 plus 990?")
    history.add_message(
        ChatMessageContent(
            role=AuthorRole.ASSISTANT,
            items=[
                TextContent(text="Adding."),
                FunctionCallContent(id="call_1", plugin_name="Math", function_name="add", arguments='{"a": 110}'),
                FunctionCallContent(id="call_2", name="Math-multiply", arguments={"a": 2, "b": 3}),
            ],
        )
    )
    history.add_message(
        ChatMessageContent(
            role=AuthorRole.TOOL, items=[FunctionResultContent(id="call_1", name="Math-add", result="1100")]
        )
    )
    history.add_message(
        ChatMessageContent(
            role=AuthorRole.TOOL, items=[FunctionResultContent(id="call_2", name="Math-multiply", result=6)]
        )
    )
    history.add_message(ChatMessageContent(role=AuthorRole.DEVELOPER, content="Answer in words."))
    assert llama_messages(history) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 110 plus 990?"},
        {
            "role": "assistant",
            "content": "Adding.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "Math-add", "arguments": '{"a": 110}'}},
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "Math-multiply", "arguments": '{"a": 2, "b": 3}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "1100"},
        {"role": "tool", "tool_call_id": "call_2", "content": "6"},
        {"role": "system", "content": "Answer in words."},
    ]


def test_malformed_arguments_in_the_history_are_sent_as_a_json_string() -> None:
    # llama.cpp refuses a request whose history holds arguments that are not JSON (checked on its
    # server: "Failed to parse tool call arguments as JSON"); the model's text goes back quoted.
    broken = "{'a': 110, b: 990"
    assert json.loads(call_arguments(broken)) == broken
    assert call_arguments('{"a": 1}') == '{"a": 1}'
    assert call_arguments({"a": 1}) == '{"a": 1}'
    assert call_arguments(None) == call_arguments("") == "{}"


def test_a_prompt_functions_result_is_sent_as_its_text_not_reprs() -> None:
    messages = [ChatMessageContent(role=AuthorRole.ASSISTANT, content="Line one"), TextContent(text="two")]
    assert result_text(messages) == "Line one\ntwo"
    assert result_text({"sum": 3}) == '{"sum": 3}'
    assert result_text(None) == ""
    assert result_text(1100) == "1100"


def test_tools_reach_the_request_and_cannot_be_combined_with_a_grammar() -> None:
    settings = LocalLlamaPromptExecutionSettings(max_tokens=16, tools=[ADD_TOOL], tool_choice="auto")
    assert llama_request(settings) == {
        "max_tokens": 16,
        "tools": [ADD_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
    }
    assert "tools" not in llama_request(LocalLlamaPromptExecutionSettings(max_tokens=16, tools=[]))
    with pytest.raises(ServiceInvalidExecutionSettingsError, match="cannot be combined"):
        llama_request(LocalLlamaPromptExecutionSettings(tools=[ADD_TOOL], grammar='root ::= "a"'))
    with pytest.raises(ServiceInvalidExecutionSettingsError, match="cannot be combined"):
        llama_request(LocalLlamaPromptExecutionSettings(tools=[ADD_TOOL], response_format={"type": "json_object"}))


# endregion

# region the answer


def test_streamed_tool_call_fragments_are_joined_by_index() -> None:
    # The fragments as llama.cpp's server streams them (OpenAI's delta.tool_calls shape).
    calls = StreamedCalls()
    calls.add([{"index": 0, "id": "abc", "type": "function", "function": {"name": "Math-add", "arguments": ""}}])
    calls.add([{"index": 0, "function": {"arguments": '{"a": 1'}}])
    calls.add([{"index": 0, "function": {"arguments": ', "b": 2}'}}])
    calls.add([{"index": 1, "id": "def", "function": {"name": "Math-multiply", "arguments": "{}"}}])
    first, second = calls.contents()
    assert (first.id, first.name, first.parse_arguments()) == ("abc", "Math-add", {"a": 1, "b": 2})
    assert (second.id, second.plugin_name, second.function_name) == ("def", "Math", "multiply")


@pytest.mark.parametrize(
    "text",
    [
        # as Qwen2.5-Coder-1.5B answered through llama.cpp
        '```json\n{\n  "name": "Math-add",\n  "arguments": {\n    "a": 110,\n    "b": 990\n  }\n}\n```',
        '{"name": "Math-add", "arguments": {"a": 110, "b": 990}}',
        '<tool_call>\n{"name": "Math-add", "arguments": {"a": 110, "b": 990}}\n</tool_call>',
        '{"name": "Math.add", "parameters": {"a": 110, "b": 990}}',
        '```json\n{"name": "Math-add", "arguments": "{\\"a\\": 110, \\"b\\": 990}"}',  # cut off before the fence ends
        '{{"name": "Math-add", "arguments": {"a": 110, "b": 990}}}',  # as the 1.5B model answered the engine
        '{{"name": "Math-add", "arguments": {"a": 110, "b": 990}}}}',  # its braces doubled unevenly (over HTTP)
        '<tools/>\n{{"name": "Math-add", "arguments": {"a": 110, "b": 990}}}',  # and made-up tags (over HTTP)
        '<tools></tools>\n<tools>\n{"name": "Math-add", "arguments": {"a": 110, "b": 990}}\n</tools>',
        '<tool_response>\n{"name": "Math-add", "arguments": {"a": 110, "b": 990}}\n</tool_response>',
    ],
    ids=[
        "fenced",
        "bare",
        "tagged",
        "dotted-parameters",
        "string-arguments-unclosed-fence",
        "doubled-braces",
        "uneven-doubled-braces",
        "made-up-empty-tag",
        "made-up-tags",
        "result-tag",
    ],
)
def test_a_call_the_model_wrote_as_text_is_a_call(text: str) -> None:
    [call] = calls_in_text(text, OFFERED)
    assert call.name == "Math-add" and call.parse_arguments() == {"a": 110, "b": 990}
    assert call.id and call.id.startswith("call_")


def test_a_call_repeated_until_max_tokens_is_one_call() -> None:
    # as Qwen2.5-Coder-0.5B answered "What is 1234 times 5678?" over HTTP with max_tokens 60
    call = '{"name": "Math-multiply", "arguments": {"a": 1234, "b": 5678}}'
    for cut in ("{", '{"name', f"{call[:40]}"):
        [only] = calls_in_text(f"{call}\n{call}\n{cut}", OFFERED)
        assert only.name == "Math-multiply" and only.parse_arguments() == {"a": 1234, "b": 5678}
    different = f'{call}\n{{"name": "Math-multiply", "arguments": {{"a": 2, "b": 3}}}}'
    assert len(calls_in_text(different, OFFERED)) == 2  # other arguments: another call
    assert calls_in_text(f"{call}\nThe product is 7006652.", OFFERED) is None


def test_several_calls_in_text_and_an_unknown_tool_is_left_to_semantic_kernel() -> None:
    text = '[{"name": "Math-add", "arguments": {"a": 1, "b": 2}}, {"name": "Math-multiply", "arguments": {}}]'
    assert [c.name for c in calls_in_text(text, OFFERED)] == ["Math-add", "Math-multiply"]
    lines = '{"name": "Math-add", "arguments": {}}\n{"name": "Math-add", "arguments": {"a": 3}}'
    assert [c.index for c in calls_in_text(lines, OFFERED)] == [0, 1]
    # semantic-kernel answers an unknown tool with "not part of the provided functions", as for OpenAI
    [unknown] = calls_in_text('{"name": "Shell-run", "arguments": {"cmd": "ls"}}', OFFERED)
    assert unknown.name == "Shell-run"


@pytest.mark.parametrize(
    "text",
    [
        "The sum is 1100.",
        '{"answer": "1100"}',
        '{"name": "Bob"}',  # an answer in JSON: no arguments and no such tool
        '{"name": "Math-add", "arguments": {"a": 1}, "note": "extra key"}',
        "```python\nprint(110 + 990)\n```",
        '{"name": "Math-add", "arguments": {"a": 1}} and then some words',
        '{"name": "Shell-run", "arguments": {"cmd": ',  # broken, and not a tool on offer
        "}}",  # braces alone are no call
    ],
)
def test_an_answer_in_words_or_other_json_stays_text(text: str) -> None:
    assert calls_in_text(text, OFFERED) is None
    assert calls_in_text('{"name": "Math-add", "arguments": {}}', set()) is None  # no tools offered


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ('{"name": "Math-add", "arguments": {"a": 110, b: 990}}', '{"a": 110, b: 990}'),
        ('```json\n{"name": "Math-add", "arguments": {"a": 110, "b": 9', '{"a": 110, "b": 9'),
    ],
    ids=["unquoted-key", "cut-off"],
)
def test_a_broken_call_to_an_offered_tool_keeps_its_broken_arguments(text: str, arguments: str) -> None:
    from semantic_kernel.exceptions import FunctionCallInvalidArgumentsException

    [call] = calls_in_text(text, OFFERED)
    assert call.name == "Math-add" and call.arguments == arguments
    with pytest.raises(FunctionCallInvalidArgumentsException):  # what semantic-kernel reports to the model
        call.parse_arguments()


def test_streamed_text_is_held_only_while_it_may_be_a_call() -> None:
    for maybe in (
        "",
        "  ",
        "`",
        "``",
        "```",
        "```js",
        "```json",
        "```json\n{",
        "{",
        ' {"na',
        "<tool",
        "<tool_call>\n{",
        "<tools",  # the 1.5B model's made-up tags, seen over HTTP
        "<tools/>\n{{",
        "<tools></tools>\n<tools>\n{",
        "<tool_resp",
        "<tool_response>\n{",
    ):
        assert could_be_call(maybe), maybe
    for words in ("The", "1100", "```python", "```\nprint", "<b>", "Sure: {"):
        assert not could_be_call(words), words
    words = HeldText(active=True)
    assert [words.feed(piece) for piece in ("", " ", "Th", "e sum", " is 1100.")] == [
        "",
        "",
        " Th",
        "e sum",
        " is 1100.",
    ]
    assert words.rest() == ""
    call = HeldText(active=True)
    pieces = ["```", "json", "\n{", '"name": "Math-add", "arguments": {}}', "\n```"]
    assert [call.feed(piece) for piece in pieces] == [""] * len(pieces)
    assert call.rest() == "".join(pieces)
    off = HeldText(active=False)  # no tools offered: nothing is held
    assert off.feed("{") == "{"


# endregion

# region semantic-kernel's loop over a scripted llama.cpp


def _math_kernel(service: LocalLlamaChatCompletion) -> tuple[Kernel, list[tuple[str, dict[str, Any]]]]:
    kernel = Kernel()
    kernel.add_service(service)
    kernel.add_plugin(MathPlugin(), plugin_name="Math")
    ran: list[tuple[str, dict[str, Any]]] = []

    async def record(context, next):  # semantic-kernel passes it by this name
        ran.append((context.function.fully_qualified_name, dict(context.arguments)))
        await next(context)

    kernel.add_filter("function_invocation", record)
    return kernel, ran


def _auto() -> LocalLlamaPromptExecutionSettings:
    return LocalLlamaPromptExecutionSettings(
        max_tokens=64,
        function_choice_behavior=FunctionChoiceBehavior.Auto(filters={"included_functions": ["Math-add"]}),
    )


def _history() -> ChatHistory:
    history = ChatHistory()
    history.add_user_message("What is 110 plus 990? Use the tool.")
    return history


QWEN_CALL = '```json\n{"name": "Math-add", "arguments": {"a": 110, "b": 990}}\n```'


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_auto_function_calling_runs_the_allowed_function_and_answers(scripted, streaming: bool) -> None:
    service, server = scripted([llama_chunks(QWEN_CALL), llama_chunks("110 plus 990 is 1100.")])
    kernel, ran = _math_kernel(service)
    history = _history()
    if streaming:
        pieces = [
            message
            async for message in service.get_streaming_chat_message_content(
                history, _auto(), kernel=kernel, arguments=KernelArguments()
            )
        ]
        text = "".join(str(piece) for piece in pieces if piece is not None and piece.role == AuthorRole.ASSISTANT)
        assert QWEN_CALL not in text and "```" not in text  # the call was held back, not streamed as words
        assert text.endswith("110 plus 990 is 1100.")
        assert pieces[-1].metadata["usage"].completion_tokens == 7
    else:
        answer = await service.get_chat_message_content(history, _auto(), kernel=kernel, arguments=KernelArguments())
        assert answer is not None and answer.content == "110 plus 990 is 1100."
        assert answer.metadata["usage"].prompt_tokens == 50
    assert [(name, {k: float(v) for k, v in args.items()}) for name, args in ran] == [
        ("Math-add", {"a": 110.0, "b": 990.0})
    ]
    first, second = server.requests
    # Only the allowed function is offered, as semantic-kernel builds it for OpenAI.
    assert [tool["function"]["name"] for tool in first["tools"]] == ["Math-add"] and first["tool_choice"] == "auto"
    assert set(first["tools"][0]["function"]["parameters"]["properties"]) == {"a", "b"}
    call_message, result_message = second["messages"][-2:]
    [call] = call_message["tool_calls"]
    assert call_message["role"] == "assistant" and call["function"]["name"] == "Math-add"
    assert json.loads(call["function"]["arguments"]) == {"a": 110, "b": 990}
    assert result_message == {"role": "tool", "tool_call_id": call["id"], "content": "1100"}


def test_the_last_round_resets_the_tools_semantic_kernel_set(scripted) -> None:
    # semantic-kernel calls this when the auto-invoke rounds are spent, so the model answers in words.
    service, _ = scripted([])
    settings = LocalLlamaPromptExecutionSettings(max_tokens=16, tools=[ADD_TOOL], tool_choice="auto")
    service._reset_function_choice_settings(settings)
    assert settings.tools is None and settings.tool_choice is None


async def test_a_native_tool_call_from_llama_cpp_is_used_as_is(scripted) -> None:
    native = [{"index": 0, "id": "llama_1", "type": "function", "function": {"name": "Math-add", "arguments": ""}}]
    rest = [{"index": 0, "function": {"arguments": '{"a": 1, "b": 2}'}}]
    answer = llama_chunks(tool_calls=native)
    answer.insert(-2, {"choices": [{"index": 0, "delta": {"tool_calls": rest}}]})
    service, server = scripted([answer, llama_chunks("3")])
    kernel, ran = _math_kernel(service)
    result = await service.get_chat_message_content(_history(), _auto(), kernel=kernel, arguments=KernelArguments())
    assert result is not None and result.content == "3"
    assert [name for name, _ in ran] == ["Math-add"]
    assert server.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "llama_1", "content": "3"}


async def test_a_malformed_call_goes_back_to_the_model_and_the_loop_goes_on(scripted) -> None:
    broken = '{"name": "Math-add", "arguments": {"a": 110, b: 990}}'
    service, server = scripted([llama_chunks(broken), llama_chunks(QWEN_CALL), llama_chunks("1100")])
    kernel, ran = _math_kernel(service)
    answer = await service.get_chat_message_content(_history(), _auto(), kernel=kernel, arguments=KernelArguments())
    assert answer is not None and answer.content == "1100"
    assert [name for name, _ in ran] == ["Math-add"]  # only the well-formed second call ran
    second = server.requests[1]["messages"]
    # llama.cpp would refuse unparsable arguments in the history: they go as a JSON string
    assert json.loads(second[-2]["tool_calls"][0]["function"]["arguments"]) == '{"a": 110, b: 990}'
    assert "arguments are malformed" in second[-1]["content"]  # semantic-kernel's own message, as for OpenAI


async def test_without_function_calling_nothing_changes(scripted) -> None:
    service, server = scripted([llama_chunks(QWEN_CALL)])
    answer = await service.get_chat_message_content(_history(), LocalLlamaPromptExecutionSettings(max_tokens=8))
    assert answer is not None and answer.content == QWEN_CALL and answer.finish_reason == FinishReason.STOP
    assert "tools" not in server.requests[0]


# endregion


async def test_too_many_tools_for_the_context_is_a_one_line_error(scripted) -> None:
    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.providers.llama.tools import check_tools_fit

    service, server = scripted([llama_chunks("unused")])
    kernel = build_kernel(Settings(), chat_service=service).kernel
    everything = LocalLlamaPromptExecutionSettings(max_tokens=8, function_choice_behavior=FunctionChoiceBehavior.Auto())
    with pytest.raises(
        ServiceInvalidExecutionSettingsError, match=r"functions offered to the local model take ~\d+ tokens"
    ):
        await service.get_chat_message_content(_history(), everything, kernel=kernel, arguments=KernelArguments())
    assert server.requests == []  # refused before llama.cpp saw it
    check_tools_fit([ADD_TOOL] * 10, 4096)  # ten small schemas fit


async def test_a_prompt_functions_variables_are_offered_as_text_not_objects(scripted) -> None:
    # semantic-kernel types an untyped prompt variable "object"; the model was shown "input": {"type": "object"}
    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import build_kernel

    service, server = scripted([llama_chunks("Fine.")])
    kernel = build_kernel(Settings(), chat_service=service).kernel
    offered = ["BusinessThinking-ChangeAudience", "Math-add", "BusinessThinking-SWOT"]
    settings = LocalLlamaPromptExecutionSettings(
        max_tokens=8, function_choice_behavior=FunctionChoiceBehavior.Auto(filters={"included_functions": offered})
    )
    await service.get_chat_message_content(_history(), settings, kernel=kernel, arguments=KernelArguments())
    tools = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in server.requests[0]["tools"]}
    assert tools["BusinessThinking-ChangeAudience"]["input"] == {"type": "string", "description": "The text to rewrite"}
    assert tools["BusinessThinking-ChangeAudience"]["level"]["type"] == "string"
    assert tools["Math-add"]["a"]["type"] == "number"  # typed native parameters stay as they are
    assert tools["BusinessThinking-SWOT"]["input"]["type"] == "string"
