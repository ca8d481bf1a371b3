"""A ``chat {model}`` span and the GenAI client histograms for every model call a chat service makes.

:func:`trace_model_calls` wraps one service's per-request methods (``_inner_get_chat_message_contents``
and its streaming twin: one call each per request to the model, inside semantic-kernel's own loop), so
every surface and every caller (conversation turns, prompt functions, planners) is covered. It composes
with other wrappers of the same methods (a call log): each wraps what it finds on the instance.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from kernel_app.base import telemetry

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

_MARK = "_kernel_app_model_spans"

# gen_ai.provider.name by the service's class; the well-known values of the conventions where one exists.
_PROVIDERS = (
    ("AzureChatCompletion", "azure.ai.openai"),
    ("OpenAIChatCompletion", "openai"),
    ("LocalLlamaChatCompletion", "llama.cpp"),
    ("ScriptedChatCompletion", "kernel_app.scripted"),
)


def provider_name(service: object) -> str:
    for cls in type(service).__mro__:
        for class_name, name in _PROVIDERS:
            if cls.__name__ == class_name:
                return name
    return type(service).__name__


def trace_model_calls(service: ChatCompletionClientBase) -> ChatCompletionClientBase:
    """The same service, its model calls traced while telemetry is on (checked per call: one branch off)."""
    if getattr(service, _MARK, False):
        return service
    provider = provider_name(service)
    inner = service._inner_get_chat_message_contents  # pyright: ignore[reportPrivateUsage]
    streaming = service._inner_get_streaming_chat_message_contents  # pyright: ignore[reportPrivateUsage]

    async def traced(chat_history: Any, settings: Any, *args: Any, **kwargs: Any) -> Any:
        if not telemetry.active():
            return await inner(chat_history, settings, *args, **kwargs)
        call = _ModelCall(service, provider, chat_history, settings)
        with call.scope.within():
            try:
                messages = await inner(chat_history, settings, *args, **kwargs)
            except BaseException as error:
                call.finish([], error)
                raise
        call.finish(list(messages or []), None)
        return messages

    async def traced_streaming(chat_history: Any, settings: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        if not telemetry.active():
            async for chunk in streaming(chat_history, settings, *args, **kwargs):
                yield chunk
            return
        call = _ModelCall(service, provider, chat_history, settings)
        merged: dict[int, Any] = {}  # choice index -> the chunks so far, added up
        error: BaseException | None = None
        try:
            async for chunk in telemetry.each_within(call.scope, streaming(chat_history, settings, *args, **kwargs)):
                for message in chunk or ():
                    index = getattr(message, "choice_index", 0) or 0
                    merged[index] = message if index not in merged else merged[index] + message
                    call.add_usage(message)
                yield chunk
        except GeneratorExit:  # the caller stopped reading: not a failure of the model
            raise
        except BaseException as caught:
            error = caught
            raise
        finally:
            call.finish(list(merged.values()), error, usage_added=True)

    # Bypasses pydantic's __setattr__: an instance attribute shadows the class's method for this service only.
    object.__setattr__(service, "_inner_get_chat_message_contents", traced)
    object.__setattr__(service, "_inner_get_streaming_chat_message_contents", traced_streaming)
    object.__setattr__(service, _MARK, True)
    return service


class _ModelCall:
    """One model request's span, from its start to its messages (or failure)."""

    def __init__(self, service: Any, provider: str, chat_history: Any, settings: Any) -> None:
        self.model = str(getattr(service, "ai_model_id", "") or "")
        self.attributes: dict[str, Any] = {
            telemetry.OPERATION: "chat",
            telemetry.PROVIDER: provider,
            telemetry.REQUEST_MODEL: self.model,
        }
        span_attributes = dict(self.attributes)
        conversation = telemetry.conversation_id()
        if conversation:
            span_attributes[telemetry.CONVERSATION_ID] = conversation
        for setting, attribute in (
            ("max_tokens", "gen_ai.request.max_tokens"),
            ("temperature", "gen_ai.request.temperature"),
        ):
            value = getattr(settings, setting, None)
            if isinstance(value, int | float):
                span_attributes[attribute] = value
        if telemetry.capture_contents():
            span_attributes[telemetry.INPUT_MESSAGES] = json.dumps(
                [_message(m) for m in getattr(chat_history, "messages", ())], ensure_ascii=False
            )
        scope = telemetry.begin(f"chat {self.model}".strip(), span_attributes)
        assert scope is not None  # made only while telemetry is active
        self.scope = scope
        self.began = time.perf_counter()
        self.input_tokens = 0
        self.output_tokens = 0

    def add_usage(self, message: Any) -> None:
        usage = (getattr(message, "metadata", None) or {}).get("usage")
        self.input_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        self.output_tokens += int(getattr(usage, "completion_tokens", 0) or 0)

    def finish(self, messages: list[Any], error: BaseException | None, *, usage_added: bool = False) -> None:
        span = self.scope.span
        metric_attributes = dict(self.attributes)
        if not usage_added:
            for message in messages:
                self.add_usage(message)
        response_model = next((str(m.ai_model_id) for m in messages if getattr(m, "ai_model_id", None)), self.model)
        metric_attributes[telemetry.RESPONSE_MODEL] = response_model
        span.set_attribute(telemetry.RESPONSE_MODEL, response_model)
        reasons = [_finish_reason(m) for m in messages]
        span.set_attribute(telemetry.FINISH_REASONS, [r for r in reasons if r])
        if self.input_tokens or self.output_tokens:
            span.set_attribute(telemetry.INPUT_TOKENS, self.input_tokens)
            span.set_attribute(telemetry.OUTPUT_TOKENS, self.output_tokens)
        if telemetry.capture_contents() and messages:
            span.set_attribute(
                telemetry.OUTPUT_MESSAGES,
                json.dumps([_message(m, _message_finish(_finish_reason(m))) for m in messages], ensure_ascii=False),
            )
        if error is not None:
            error_type = type(error).__qualname__
            metric_attributes[telemetry.ERROR_TYPE] = error_type
            self.scope.fail(error_type, str(error)[:200])
        self.scope.end()
        telemetry.record_operation(
            time.perf_counter() - self.began, metric_attributes, self.input_tokens, self.output_tokens
        )


def _finish_reason(message: Any) -> str:
    """The model's own reason, as OpenAI spells them (``tool_calls``): the span attribute is the raw value."""
    reason = getattr(message, "finish_reason", None)
    if reason is None:
        from semantic_kernel.contents import FunctionCallContent

        # Local and scripted services leave it unset: a reply of calls ended for its calls.
        calls = any(isinstance(item, FunctionCallContent) for item in getattr(message, "items", ()))
        return "tool_calls" if calls else "stop"
    return str(getattr(reason, "value", reason))


def _message_finish(reason: str) -> str:
    # The output-messages JSON schema's enum says tool_call where OpenAI says tool_calls.
    return "tool_call" if reason == "tool_calls" else reason


def _message(message: Any, finish_reason: str = "") -> dict[str, Any]:
    """A message as the conventions' JSON shape: role and parts (text, tool calls, tool results)."""
    from semantic_kernel.contents import FunctionCallContent, FunctionResultContent, TextContent

    parts: list[dict[str, Any]] = []
    for item in getattr(message, "items", ()):
        if isinstance(item, FunctionCallContent):
            parts.append(
                {"type": "tool_call", "id": item.id, "name": item.name, "arguments": _jsonable(item.arguments)}
            )
        elif isinstance(item, FunctionResultContent):
            parts.append({"type": "tool_call_response", "id": item.id, "response": str(item.result)})
        elif isinstance(item, TextContent) or hasattr(item, "text"):
            parts.append({"type": "text", "content": str(getattr(item, "text", "") or "")})
    if not parts and getattr(message, "content", None):
        parts.append({"type": "text", "content": str(message.content)})
    role = getattr(message, "role", "")
    shaped: dict[str, Any] = {"role": str(getattr(role, "value", role)), "parts": parts}
    if finish_reason:
        shaped["finish_reason"] = finish_reason
    return shaped


def _jsonable(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return dict(arguments) if arguments else {}
