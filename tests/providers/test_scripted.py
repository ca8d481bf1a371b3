"""The scripted chat service scripts function calls: ``ScriptedChatCompletion([call("Math.add", a=2, b=3), "5"])``.

This is how users test their own plugins offline, so it is checked the ways they will use it: through
semantic-kernel's auto function calling and through the conversation engine, streamed and not, with
a malformed call and a call to a function that does not exist.
"""

from __future__ import annotations

import pytest
from semantic_kernel import Kernel
from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import ChatHistory, FunctionCallContent
from semantic_kernel.functions import KernelArguments

from kernel_app import ConversationEngine, FunctionCallFinished, FunctionCallStarted, ScriptedChatCompletion, call
from kernel_app.providers.scripted import ScriptedCall
from plugins.Math.math_plugin import MathPlugin
from tests.support.spies import count_invocations


def math_kernel(service: ScriptedChatCompletion) -> Kernel:
    kernel = Kernel()
    kernel.add_service(service)
    kernel.add_plugin(MathPlugin(), "Math")
    return kernel


def auto() -> KernelArguments:
    behavior = FunctionChoiceBehavior.Auto(filters={"included_functions": ["Math-add"]})
    return KernelArguments(settings=PromptExecutionSettings(function_choice_behavior=behavior))


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_a_scripted_call_runs_the_plugin_and_the_model_answers_from_its_result(streaming: bool) -> None:
    service = ScriptedChatCompletion([call("Math.add", a=2, b=3), "The sum is 5."])
    kernel = math_kernel(service)

    if streaming:
        chunks = [c async for c in kernel.invoke_prompt_stream("What is 2 + 3?", arguments=auto())]
        answer = "".join(str(c[0]) for c in chunks if c and not isinstance(c[0], FunctionCallContent))
    else:
        answer = str(await kernel.invoke_prompt("What is 2 + 3?", arguments=auto()))

    assert answer.endswith("The sum is 5."), f"the answer after the call should be the model's: {answer!r}"
    first, second = service.requests
    assert first.offered == ["Math-add"], "the first request should offer the allow-list it was given"
    assert first.function_results == [], "nothing has run before the model's call"
    assert second.function_results == ["5"], "Math.add(2, 3) should have run and its result gone back"
    assert service.remaining == 0


async def test_through_the_conversation_engine_the_call_is_an_event_and_the_answer_follows() -> None:
    service = ScriptedChatCompletion([call("Math.add", a=2, b=3), "5"])
    engine = ConversationEngine(math_kernel(service))
    turn = await engine.send(engine.create().id, "What is 2 + 3?")

    started = [e for e in turn.events if isinstance(e, FunctionCallStarted)]
    finished = [e for e in turn.events if isinstance(e, FunctionCallFinished)]
    assert [e.function for e in started] == ["Math.add"], f"events were {turn.events}"
    assert [(e.ok, e.result) for e in finished] == [(True, "5")], f"events were {turn.events}"
    assert turn.text == "5"


async def test_several_calls_in_one_answer_all_run() -> None:
    service = ScriptedChatCompletion([[call("Math.add", a=2, b=3), call("Math.multiply", a=4, b=5)], "5 and 20"])
    kernel = math_kernel(service)
    behavior = FunctionChoiceBehavior.Auto(filters={"included_plugins": ["Math"]})
    arguments = KernelArguments(settings=PromptExecutionSettings(function_choice_behavior=behavior))

    assert str(await kernel.invoke_prompt("2 + 3 and 4 * 5?", arguments=arguments)) == "5 and 20"
    assert sorted(service.requests[1].function_results) == ["20", "5"]


@pytest.mark.parametrize(
    ("scripted", "told"),
    [
        (call("Math.add", '{"a": 2,'), "arguments are malformed"),
        (call("Math.nope", a=1), "not part of the provided tools"),
    ],
    ids=["malformed-arguments", "unknown-function"],
)
async def test_a_malformed_call_runs_nothing_and_the_model_is_told(scripted: ScriptedCall, told: str) -> None:
    service = ScriptedChatCompletion([scripted, "Sorry, I could not add them."])
    kernel = math_kernel(service)
    invoked = count_invocations(kernel)

    answer = str(await kernel.invoke_prompt("What is 2 + 3?", arguments=auto()))

    assert answer == "Sorry, I could not add them."
    ran = [name for name in invoked if name.startswith("Math.")]  # the prompt itself is invoked too
    assert ran == [], f"a malformed call must run nothing, but {ran} ran"
    [result] = service.requests[1].function_results
    assert told in result, f"the model should be told what was wrong, it was told {result!r}"


async def test_a_malformed_call_in_the_engine_is_a_failed_call_and_the_turn_goes_on() -> None:
    service = ScriptedChatCompletion([call("Math.add", "not json"), "I could not add them."])
    engine = ConversationEngine(math_kernel(service))
    turn = await engine.send(engine.create().id, "What is 2 + 3?")

    [finished] = [e for e in turn.events if isinstance(e, FunctionCallFinished)]
    assert finished.ok is False and "Nothing ran" in finished.result, f"the failed call was {finished}"
    assert turn.text == "I could not add them."


def test_the_service_calls_functions_only_once_a_call_is_scripted() -> None:
    assert ScriptedChatCompletion(["text"]).SUPPORTS_FUNCTION_CALLING is False
    assert ScriptedChatCompletion([call("Math.add", a=1, b=2)]).SUPPORTS_FUNCTION_CALLING is True
    assert ScriptedChatCompletion(default=call("Math.add", a=1, b=2)).SUPPORTS_FUNCTION_CALLING is True
    assert ScriptedChatCompletion(function_calling=True).SUPPORTS_FUNCTION_CALLING is True
    later = ScriptedChatCompletion()
    later.queue(call("Math.add", a=1, b=2))
    assert later.SUPPORTS_FUNCTION_CALLING is True, "queueing a call should make the service call functions"


async def test_a_callable_may_answer_with_a_call() -> None:
    service = ScriptedChatCompletion(
        [lambda request: call("Math.add", a=len(request.prompt.split()), b=1), "done"], function_calling=True
    )
    assert str(await math_kernel(service).invoke_prompt("one two three", arguments=auto())) == "done"
    assert service.requests[1].function_results == ["4"]


def test_names_are_read_as_a_person_writes_them_or_as_semantic_kernel_does() -> None:
    dotted = call("Math.add", a=2, b=3).content("call_1")
    dashed = call("Math-add", a=2, b=3).content("call_1")
    assert (dotted.plugin_name, dotted.function_name) == ("Math", "add")
    assert (dashed.plugin_name, dashed.function_name) == ("Math", "add")
    assert dotted.arguments == '{"a": 2, "b": 3}'


async def test_script_mistakes_are_one_line_errors() -> None:
    with pytest.raises(TypeError, match=r"call\('Math.add'\): give the arguments as keywords or as JSON text"):
        call("Math.add", '{"a": 2}', b=3)
    service = ScriptedChatCompletion([[call("Math.add", a=1, b=2), "not a call"]], function_calling=True)
    history = ChatHistory()
    history.add_user_message("hi")
    with pytest.raises(TypeError, match="a scripted answer is a string, call"):
        await service.get_chat_message_contents(history, PromptExecutionSettings())
    with pytest.raises(TypeError, match=r"a scripted answer is a string, call\(\.\.\.\) or a non-empty list .*not 42"):
        ScriptedChatCompletion([42])  # type: ignore[list-item]
