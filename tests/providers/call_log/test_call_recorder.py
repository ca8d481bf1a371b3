"""Every model call is logged, whichever way it was made: plain, streamed, in the function-calling loop,
inside a function (and a function inside a function), in a conversation; and a log that fails never breaks
the call. The calls go to a real SQLite call log in the test's folder."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import pytest
from semantic_kernel import Kernel
from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import ChatHistory, FunctionCallContent
from semantic_kernel.functions import KernelArguments, kernel_function

from kernel_app import ConversationEngine, ScriptedChatCompletion, call
from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.call_log import CallQuery, CallRecord, CallRecorder, record_calls, recorder_of
from kernel_app.providers.call_log.sqlite_log import SqliteCallLog
from plugins.Math.math_plugin import MathPlugin


@pytest.fixture
def log(tmp_path: Path) -> Any:
    opened = SqliteCallLog(tmp_path / "calls.sqlite3")
    yield opened
    opened.close()


RECORDERS: list[CallRecorder] = []


def recorded(service: ScriptedChatCompletion, log: Any) -> ScriptedChatCompletion:
    recorder = CallRecorder(lambda: log)
    RECORDERS.append(recorder)
    record_calls(service, recorder)
    return service


def calls(log: Any) -> list[CallRecord]:
    """The logged calls, oldest first, once the recorders' writer threads wrote what they were given."""
    for recorder in RECORDERS:
        assert recorder.flush(10), "the writer thread should write within seconds"
    return list(reversed(log.query(CallQuery(limit=None))))


def auto() -> KernelArguments:
    behavior = FunctionChoiceBehavior.Auto(filters={"included_functions": ["Math-add"]})
    return KernelArguments(settings=PromptExecutionSettings(function_choice_behavior=behavior))


def math_kernel(service: ScriptedChatCompletion) -> Kernel:
    kernel = Kernel()
    kernel.add_service(service)
    kernel.add_plugin(MathPlugin(), "Math")
    return kernel


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_a_prompt_function_call_is_logged_with_prompt_settings_answer_tokens_and_function(
    log: Any, tmp_path: Path, streaming: bool
) -> None:
    service = recorded(ScriptedChatCompletion(default="Bread is good."), log)
    kernel = build_kernel(Settings(memory_dir=tmp_path), chat_service=service).kernel
    summarize = kernel.get_function("Writer", "Summarize")

    if streaming:
        chunks = [c async for c in kernel.invoke_stream(summarize, input="A long text about bread.")]
        answer = "".join(str(c[0]) for c in chunks)
    else:
        answer = str(await kernel.invoke(summarize, input="A long text about bread."))

    assert answer == "Bread is good.", "recording must not change the answer"
    [record] = calls(log)
    assert record.answer == "Bread is good."
    assert record.streamed is streaming
    assert "A long text about bread." in record.messages[-1]["content"], "the prompt as rendered and sent"
    assert record.messages[-1]["role"] == "user"
    # The prompt's own settings (Writer/Summarize/config.json), as the service got them.
    assert record.settings.get("max_tokens") and "temperature" in record.settings, record.settings
    # Streamed, the function's model call runs after the filters returned: it is still attributed.
    assert record.function == "Writer.Summarize" and record.root_function == "Writer.Summarize"
    assert record.arguments_of() == {"input": "A long text about bread."}
    words = sum(len(m["content"].split()) for m in record.messages)  # the scripted service counts words
    assert (record.prompt_tokens, record.completion_tokens) == (words, 3)
    assert record.latency_ms >= 0 and record.service == "scripted" and record.model == "scripted"
    assert record.conversation is None and record.error is None


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_the_function_calling_loop_logs_one_call_per_round_and_still_runs_the_function(
    log: Any, streaming: bool
) -> None:
    service = recorded(ScriptedChatCompletion([call("Math.add", a=2, b=3), "The sum is 5."]), log)
    kernel = math_kernel(service)

    if streaming:
        chunks = [c async for c in kernel.invoke_prompt_stream("What is 2 + 3?", arguments=auto())]
        answer = "".join(str(c[0]) for c in chunks if c and not isinstance(c[0], FunctionCallContent))
    else:
        answer = str(await kernel.invoke_prompt("What is 2 + 3?", arguments=auto()))

    assert answer.endswith("The sum is 5."), answer
    assert service.requests[1].function_results == ["5"], "Math.add must still run between the two requests"
    first, second = calls(log)
    assert first.tool_calls == [{"name": "Math.add", "arguments": '{"a": 2, "b": 3}'}] and first.answer == ""
    assert first.settings["functions_offered"] == ["Math.add"]
    assert second.answer == "The sum is 5."
    # The second request carried the call and its result.
    assert any(m.get("tool_calls") for m in second.messages)
    assert any(m.get("role") == "tool" and m["content"] == "5" for m in second.messages), second.messages
    assert first.streamed is second.streamed is streaming


class Outer:
    """A native function that runs a prompt function, as BusinessThinking.SWOT runs SWOTDraft."""

    @kernel_function(name="twice")
    async def twice(self, topic: str, kernel: Kernel) -> str:
        inner = kernel.get_function("Writer", "Summarize")
        answer = str(await kernel.invoke(inner, input=f"{topic}, said twice"))
        return f"{answer} {answer}"


async def test_a_call_inside_a_native_function_knows_both_functions_and_their_arguments(
    log: Any, tmp_path: Path
) -> None:
    service = recorded(ScriptedChatCompletion(default="Short."), log)
    kernel = build_kernel(Settings(memory_dir=tmp_path), chat_service=service).kernel
    kernel.add_plugin(Outer(), "Outer")

    await kernel.invoke(kernel.get_function("Outer", "twice"), topic="bakeries")

    [record] = calls(log)
    assert [f["name"] for f in record.functions] == ["Outer.twice", "Writer.Summarize"]
    assert (record.root_function, record.function) == ("Outer.twice", "Writer.Summarize")
    assert record.arguments_of("Outer.twice") == {"topic": "bakeries"}
    assert record.arguments_of() == {"input": "bakeries, said twice"}
    # What the outermost function returned, written on its calls once it ended: not the model's answer.
    assert record.answer == "Short." and record.root_result == "Short. Short."


async def test_a_prompt_function_run_alone_has_its_answer_as_its_result(log: Any, tmp_path: Path) -> None:
    service = recorded(ScriptedChatCompletion(default="Bread is good."), log)
    kernel = build_kernel(Settings(memory_dir=tmp_path), chat_service=service).kernel
    await kernel.invoke(kernel.get_function("Writer", "Summarize"), input="bread")
    [record] = calls(log)
    assert record.root_result == "Bread is good."


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_a_conversation_turn_logs_its_calls_under_the_conversation(
    log: Any, tmp_path: Path, streaming: bool
) -> None:
    service = recorded(ScriptedChatCompletion([call("Math.add", a=2, b=3), "5"]), log)
    engine = ConversationEngine(math_kernel(service))
    conversation = engine.create().id

    if streaming:
        events = [e async for e in engine.stream(conversation, "What is 2 + 3?")]
        assert events, "the turn streams"
    else:
        assert (await engine.send(conversation, "What is 2 + 3?")).text == "5"

    records = calls(log)
    assert len(records) == 2 and {r.conversation for r in records} == {conversation}
    assert records[1].answer == "5"
    # Between turns the conversation is no longer set: a later call outside it is not attributed to it.
    service.queue("no")
    await math_kernel(service).invoke_prompt("Anything else?")
    assert calls(log)[-1].conversation is None


class BrokenLog:
    backend = "broken"

    def __init__(self) -> None:
        self.attempts = 0

    def write_many(self, records: list[CallRecord]) -> None:
        self.attempts += 1
        raise OSError("disk full")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_a_log_that_cannot_write_is_one_warning_and_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture, streaming: bool
) -> None:
    broken = BrokenLog()
    service = ScriptedChatCompletion(default="still answered")
    recorder = CallRecorder(lambda: broken)  # type: ignore[arg-type,return-value]
    record_calls(service, recorder)
    history = ChatHistory()
    history.add_user_message("hello")

    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            if streaming:
                chunks = [
                    c async for c in service.get_streaming_chat_message_contents(history, PromptExecutionSettings())
                ]
                answer = "".join(str(c[0]) for c in chunks)
            else:
                answer = str((await service.get_chat_message_contents(history, PromptExecutionSettings()))[0])
            assert answer == "still answered"
            assert recorder.flush(10)  # the write fails on the writer thread, after the call returned

    assert broken.attempts == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "call log" in r.getMessage()]
    assert len(warnings) == 1 and "disk full" in warnings[0].getMessage(), "one warning, naming the reason"


async def test_a_log_that_cannot_open_is_a_warning_too(caplog: pytest.LogCaptureFixture) -> None:
    def cannot_open() -> Any:
        raise PermissionError("read-only data folder")

    recorder = CallRecorder(cannot_open)
    service = record_calls(ScriptedChatCompletion(default="fine"), recorder)
    history = ChatHistory()
    history.add_user_message("hello")
    with caplog.at_level(logging.WARNING):
        assert str((await service.get_chat_message_contents(history, PromptExecutionSettings()))[0]) == "fine"
        assert recorder.flush(10)
    assert any("read-only data folder" in r.getMessage() for r in caplog.records)


async def test_a_failed_model_call_is_logged_with_its_error_and_still_raises(log: Any) -> None:
    service = recorded(ScriptedChatCompletion([]), log)  # nothing scripted: the request fails
    history = ChatHistory()
    history.add_user_message("hello")
    with pytest.raises(AssertionError, match="no scripted answer"):
        await service.get_chat_message_contents(history, PromptExecutionSettings())
    [record] = calls(log)
    assert record.answer == "" and "ScriptedAnswersExhausted" in (record.error or "")


async def test_a_stream_its_reader_stops_early_is_logged_with_what_came(log: Any) -> None:
    service = recorded(ScriptedChatCompletion(default="one two three four"), log)
    history = ChatHistory()
    history.add_user_message("count")
    stream = service.get_streaming_chat_message_contents(history, PromptExecutionSettings())
    first = await stream.__anext__()
    await stream.aclose()
    # semantic-kernel's stream does not close the service's own stream it was reading: the event loop
    # closes that one once it is garbage (its async-generator hook), a moment later.
    gc.collect()
    for _ in range(3):
        await asyncio.sleep(0)
    assert str(first[0]) == "one "
    [record] = calls(log)
    assert record.answer == "one " and "stopped reading" in (record.error or "")


def test_recording_keeps_the_service_itself_and_is_not_applied_twice(log: Any) -> None:
    service = ScriptedChatCompletion(default="x")
    recorder = CallRecorder(lambda: log)
    assert record_calls(service, recorder) is service
    assert isinstance(service, ScriptedChatCompletion) and recorder_of(service) is recorder
    again = CallRecorder(lambda: log)
    record_calls(service, again)
    assert recorder_of(service) is recorder, "a second recorder would log every call twice"


async def test_a_call_returns_before_its_record_is_written_and_flush_waits_for_it(log: Any) -> None:
    """The write happens on the recorder's thread: a slow log never holds up the call."""
    import threading

    release = threading.Event()

    class SlowLog:
        backend = "slow"

        def write_many(self, records: list[CallRecord]) -> None:
            release.wait(10)
            log.write_many(records)

        def close(self) -> None:
            pass

    recorder = CallRecorder(lambda: SlowLog())  # type: ignore[arg-type,return-value]
    service = record_calls(ScriptedChatCompletion(default="quick"), recorder)
    history = ChatHistory()
    history.add_user_message("hello")
    assert str((await service.get_chat_message_contents(history, PromptExecutionSettings()))[0]) == "quick"
    assert recorder.flush(0.2) is False and log.query(CallQuery()) == [], "still being written"
    release.set()
    assert recorder.flush(10) is True
    [record] = log.query(CallQuery())
    assert record.answer == "quick"
    recorder.close()
