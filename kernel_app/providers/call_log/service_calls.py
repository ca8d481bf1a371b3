"""Log every call a chat service makes, whichever surface made it.

semantic-kernel 1.45 has no filter that sees a chat service's requests (its filters see function
invocations, prompt rendering and auto function calls; the conversation engine and the planners call
the service directly). So ``record_calls`` wraps the service's two request methods on the instance,
``_inner_get_chat_message_contents`` and ``_inner_get_streaming_chat_message_contents``: every public
method (plain, streaming, the function-calling loop, which makes one request per round) goes through
them, and the service keeps its own class, so ``isinstance`` checks and profiles still see it.

The request is copied when it is sent; the record is built from it on the recorder's thread.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from functools import partial
from typing import TYPE_CHECKING, Any

from kernel_app.providers.call_log.context import current_conversation, current_functions
from kernel_app.providers.call_log.recorder import CallRecorder
from kernel_app.providers.call_log.records import CallRecord

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
    from semantic_kernel.contents import ChatHistory, ChatMessageContent, StreamingChatMessageContent

RECORDER_ATTRIBUTE = "_kernel_app_call_recorder"  # marks a service already recorded


def record_calls(service: ChatCompletionClientBase, recorder: CallRecorder) -> ChatCompletionClientBase:
    """``service``, its requests now written to ``recorder``'s log (once: recording twice is a no-op)."""
    if getattr(service, RECORDER_ATTRIBUTE, None) is not None:
        return service
    inner = service._inner_get_chat_message_contents
    inner_stream = service._inner_get_streaming_chat_message_contents

    async def recorded(chat_history: ChatHistory, settings: PromptExecutionSettings) -> list[ChatMessageContent]:
        call = _start(recorder, service, chat_history, settings, streamed=False)
        try:
            completions = await inner(chat_history, settings)
        except BaseException as exc:
            if call is not None:
                call.stop()
                recorder.write(partial(call.failed, exc))
            raise
        if call is not None:
            call.stop()
            recorder.write(partial(call.answered, completions[0] if completions else None))
        return completions

    async def recorded_stream(
        chat_history: ChatHistory, settings: PromptExecutionSettings, function_invoke_attempt: int = 0
    ) -> AsyncGenerator[list[StreamingChatMessageContent], Any]:
        call = _start(recorder, service, chat_history, settings, streamed=True)
        chunks: list[StreamingChatMessageContent] = []
        try:
            async for messages in inner_stream(chat_history, settings, function_invoke_attempt):
                chunks.extend(m for m in messages if m is not None and getattr(m, "choice_index", 0) == 0)
                yield messages
        except BaseException as exc:  # a failed stream, or one its reader stopped: what came is logged
            if call is not None:
                call.stop()
                recorder.write(partial(call.stream_record, chunks, error=_stopped(exc)))
            raise
        if call is not None:
            call.stop()
            recorder.write(partial(call.stream_record, chunks))

    # Instance attributes shadow the class's methods; pydantic stores an undeclared `_name` on the instance.
    service._inner_get_chat_message_contents = recorded  # pyright: ignore[reportAttributeAccessIssue]  # SK's method, shadowed per instance
    service._inner_get_streaming_chat_message_contents = recorded_stream  # pyright: ignore[reportAttributeAccessIssue]  # as above
    object.__setattr__(service, RECORDER_ATTRIBUTE, recorder)
    return service


def recorder_of(service: Any) -> CallRecorder | None:
    return getattr(service, RECORDER_ATTRIBUTE, None)


def _start(recorder: CallRecorder, service: Any, chat_history: Any, settings: Any, *, streamed: bool) -> _Call | None:
    """The request, copied before it is sent; None (and a warning) if it cannot be read: the call goes on."""
    try:
        return _Call(recorder, service, chat_history, settings, streamed=streamed)
    except Exception as exc:
        recorder.failed(exc)
        return None


def _stopped(exc: BaseException) -> str:
    if isinstance(exc, GeneratorExit):
        return "the caller stopped reading the stream"
    return f"{type(exc).__name__}: {exc}".strip()


class _Call:
    """A request as sent (copied before the model answers: the history grows afterwards), then its answer."""

    def __init__(
        self, recorder: CallRecorder, service: Any, chat_history: Any, settings: Any, *, streamed: bool
    ) -> None:
        self.started_at = time.time()
        self.clock = time.perf_counter()
        self.ended = self.clock
        self.service = str(getattr(service, "service_id", "") or "")
        self.model = str(getattr(settings, "ai_model_id", None) or getattr(service, "ai_model_id", "") or "")
        # The history grows after this request (answers, function results): its messages as they are now. They
        # are read into the record on the writer thread; a message already in a history is not changed.
        self.history = list(getattr(chat_history, "messages", []))
        self.settings = _settings(settings)
        self.streamed = streamed
        frames = current_functions()
        self.functions = [{"name": f.name, "arguments": f.arguments} for f in frames]
        self.root_invocation = frames[0].id if frames else None
        if frames and recorder.write_result not in frames[0].on_result:  # the root function's result, later
            frames[0].on_result.append(recorder.write_result)
        self.conversation = current_conversation()

    def stop(self) -> None:
        """The answer is in (the record itself is built later, on the writer thread)."""
        self.ended = time.perf_counter()

    def _record(self, answer: str, **fields: Any) -> CallRecord:
        return CallRecord(
            started_at=self.started_at,
            service=self.service,
            model=self.model,
            messages=_messages(self.history),
            settings=self.settings,
            answer=answer,
            latency_ms=(self.ended - self.clock) * 1000,
            streamed=self.streamed,
            functions=self.functions,
            root_invocation=self.root_invocation,
            conversation=self.conversation,
            **fields,
        )

    def answered(self, message: Any) -> CallRecord:
        if message is None:
            return self._record("", error="the service returned no answer")
        prompt_tokens, completion_tokens = _usage(getattr(message, "metadata", None))
        return self._record(
            str(getattr(message, "content", "") or ""),
            tool_calls=_tool_calls(getattr(message, "items", [])),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=_finish(message),
        )

    def failed(self, exc: BaseException) -> CallRecord:
        return self._record("", error=f"{type(exc).__name__}: {exc}".strip())

    def _joined(self, chunks: list[Any]) -> Any:
        """The chunks added up as semantic-kernel adds them (function-call arguments joined), or None."""
        from functools import reduce

        if not chunks:
            return None
        try:
            return reduce(lambda a, b: a + b, chunks)
        except Exception:  # chunks semantic-kernel will not add (mixed models): the text is still there
            return None

    def stream_record(self, chunks: list[Any], error: str | None = None) -> CallRecord:
        whole = self._joined(chunks)
        text = "".join(str(getattr(c, "content", "") or "") for c in chunks)
        prompt_tokens = completion_tokens = None
        finish = None
        for chunk in chunks:
            found = _usage(getattr(chunk, "metadata", None))
            if found != (None, None):
                prompt_tokens, completion_tokens = found
            finish = _finish(chunk) or finish
        items = getattr(whole, "items", []) if whole is not None else []
        return self._record(
            text,
            tool_calls=_tool_calls(items),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
            error=error,
        )


def _messages(history: list[Any]) -> list[dict[str, Any]]:
    from semantic_kernel.contents import FunctionCallContent, FunctionResultContent

    messages: list[dict[str, Any]] = []
    for message in history:
        entry: dict[str, Any] = {"role": str(getattr(message.role, "value", message.role)), "content": ""}
        entry["content"] = str(message.content or "")
        calls = [i for i in message.items if isinstance(i, FunctionCallContent)]
        if calls:
            entry["tool_calls"] = _tool_calls(calls)
        results = [i for i in message.items if isinstance(i, FunctionResultContent)]
        if results:
            entry["name"] = results[0].name.replace("-", ".") if results[0].name else None
            entry["content"] = entry["content"] or "\n".join(str(r.result) for r in results)
        messages.append(entry)
    return messages


def _tool_calls(items: Any) -> list[dict[str, Any]]:
    from semantic_kernel.contents import FunctionCallContent

    return [
        {"name": (item.name or "").replace("-", "."), "arguments": item.arguments}
        for item in items or []
        if isinstance(item, FunctionCallContent)
    ]


SETTINGS_LEFT_OUT = {"function_choice_behavior", "extension_data", "service_id"}


def _settings(settings: Any) -> dict[str, Any]:
    """The request's settings as JSON: the typed fields that are set, the config's extras, the functions offered."""
    from kernel_app.providers.call_log.context import json_ready

    try:
        fields = settings.model_dump(exclude_none=True, exclude=SETTINGS_LEFT_OUT)
        values: dict[str, Any] = {**json_ready(getattr(settings, "extension_data", {}) or {}), **json_ready(fields)}
        behavior = getattr(settings, "function_choice_behavior", None)
        if behavior is not None:
            offered = (getattr(behavior, "filters", None) or {}).get("included_functions")
            values["function_choice"] = str(getattr(behavior, "type_", "") or "auto")
            if offered:
                values["functions_offered"] = [str(name).replace("-", ".") for name in offered]
        values.pop("tools", None)  # the full schemas of the functions offered: their names above say enough
        return values
    except Exception as exc:  # settings of an unusual type: say so rather than fail the call
        return {"unreadable": f"{type(exc).__name__}: {exc}"}


def _usage(metadata: Any) -> tuple[int | None, int | None]:
    usage = metadata.get("usage") if isinstance(metadata, dict) else None
    if usage is None:
        return None, None
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    return (int(prompt) if prompt is not None else None, int(completion) if completion is not None else None)


def _finish(message: Any) -> str | None:
    reason = getattr(message, "finish_reason", None)
    return str(getattr(reason, "value", reason)) if reason is not None else None
