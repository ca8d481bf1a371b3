"""The OpenAI Responses API: ``POST /v1/responses`` (JSON or streamed events), ``GET /v1/responses/{id}``
and ``DELETE /v1/responses/{id}``.

Models as on chat completions (:mod:`kernel_app.interfaces.server.openai_compat`): ``kernel-app`` is the kernel
(the conversation engine calls the plugins' functions; what needs a person's approval is refused, as no one
can be asked), the underlying model's own name is a plain pass-through. A client's own ``tools`` are a 400.

The kernel runs its functions itself, so a response shows each call as a ``function_call`` output item
(``name`` is ``Plugin-Function``, the tool name the model was offered) followed by a
``function_call_output`` item with its result as the engine reports it (its first 200 characters, spaces
collapsed: the model got all of it), then the answer's ``message``. A client that sends those items back
as ``input`` (stateless use, ``store: false``) gets them understood as the calls and results they were.

Stored responses (``store``, true by default) live in the conversation store (SQLite, or PostgreSQL with
``database_url``, so any instance continues them): each response is a conversation whose id is the
response's id, holding the conversation up to and including that response. ``previous_response_id``
copies that conversation into the new response's, so two responses can continue one (as in OpenAI's API).
The REST API lists them among the conversations. Deleting a response deletes its conversation: it is then
a 404 everywhere, as ``previous_response_id`` too; responses that continued it keep their own copy (as in
OpenAI's API, where deleting one response leaves later ones). ``instructions`` apply to their own response only. A
failed response is not stored. Unstored responses run over the messages the request holds, as chat
completions do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from openai.types.responses import (
    Response as OpenAIResponse,
)
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFailedEvent,
    ResponseFunctionToolCall,
    ResponseFunctionToolCallOutputItem,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseRefusalDoneEvent,
    ResponseStatus,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_output_message import Content
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import BaseModel, ConfigDict, Field

from kernel_app.conversation.engine import ConversationEngine
from kernel_app.conversation.events import (
    Done,
    ErrorEvent,
    Event,
    FunctionCallFinished,
    FunctionCallStarted,
    TextDelta,
)
from kernel_app.conversation.off_loop import off_the_loop
from kernel_app.conversation.store import Message, ToolCall
from kernel_app.interfaces.server.chat_surface import approver, refusal
from kernel_app.interfaces.server.errors import ApiError
from kernel_app.interfaces.server.limits import CLIENT_GONE, gated, unless_disconnected
from kernel_app.interfaces.server.security import identity_of, owner_filter
from kernel_app.interfaces.server.sse import HEADERS, frame
from kernel_app.interfaces.server.state import KERNEL_MODEL, ServerState, State

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

RESPONSE_PREFIX = "resp_"  # a stored response's id, and its conversation's
RESULT_CHARS = 200  # of a function result in a function_call_output item (the engine's summary)
ItemStatus = Literal["in_progress", "completed", "incomplete"]
TEXT_PARTS = ("input_text", "output_text", "text")  # content parts whose text is understood


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # harmless fields (metadata, user, truncation...) are accepted

    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None


def bad_request(param: str, message: str, code: str = "unsupported_parameter") -> ApiError:
    return ApiError(400, f"{param}: {message}", code, param=param)


def refuse_unsupported(body: ResponsesRequest) -> None:
    """A 400 naming the field for what this server does not do (never silently dropped)."""
    if body.tools:
        kinds = sorted({str(tool.get("type", "?")) for tool in body.tools})
        raise bad_request(
            "tools",
            f"client-side tools ({', '.join(kinds)}) are not supported: model {KERNEL_MODEL} calls the kernel's "
            "own functions; leave tools out",
        )
    if body.tool_choice not in (None, "auto", "none"):
        raise bad_request("tool_choice", "only 'auto' or 'none' (the kernel chooses its own functions)")
    if body.background:
        raise bad_request("background", "background responses are not supported; leave it out or false")
    if body.conversation is not None:
        raise bad_request("conversation", "not supported: continue a response with previous_response_id")
    if body.prompt is not None:
        raise bad_request("prompt", "stored prompt templates are not supported: send input and instructions")
    format_type = ((body.text or {}).get("format") or {}).get("type", "text")
    if format_type != "text":
        raise bad_request("text.format", f"only type 'text' is supported, not {format_type!r}")


# region input


def input_messages(value: str | list[dict[str, Any]]) -> list[Message]:
    """The request's ``input`` as messages; the last one is the user's (this response answers it)."""
    if isinstance(value, str):
        messages = [Message("user", value)]
    else:
        messages: list[Message] = []
        functions: dict[str, str] = {}  # call id -> Plugin.Function, for the outputs that follow
        for index, item in enumerate(value):
            messages.extend(_item_messages(item, f"input[{index}]", functions, messages))
    if not messages or messages[-1].role != "user":
        raise bad_request("input", "the last item must be a user message (a string, or role 'user')", "invalid_input")
    return messages


def _item_messages(item: dict[str, Any], where: str, functions: dict[str, str], before: list[Message]) -> list[Message]:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise bad_request(f"{where}.role", f"{role!r} is not one of user, system, developer, assistant")
        return [Message("system" if role == "developer" else role, _text(item.get("content"), where))]
    if kind == "function_call":
        name, call_id = item.get("name"), item.get("call_id")
        if not isinstance(name, str) or not isinstance(call_id, str):
            raise bad_request(where, "a function_call item needs name and call_id", "invalid_input")
        try:
            arguments = json.loads(item.get("arguments") or "{}")
        except json.JSONDecodeError:
            raise bad_request(f"{where}.arguments", "not JSON", "invalid_input") from None
        call = ToolCall(call_id, name.replace("-", ".", 1), arguments if isinstance(arguments, dict) else {})
        functions[call_id] = call.function
        last = before[-1] if before else None
        if last is not None and last.role == "assistant" and last.tool_calls:  # calls of one round: one message
            before[-1] = Message("assistant", last.content, tool_calls=(*last.tool_calls, call))
            return []
        return [Message("assistant", "", tool_calls=(call,))]
    if kind == "function_call_output":
        call_id = item.get("call_id")
        if call_id not in functions:
            raise bad_request(f"{where}.call_id", "no function_call item before it has this call_id", "invalid_input")
        output = item.get("output")
        return [
            Message("tool", output if isinstance(output, str) else _text(output, where), functions[call_id], call_id)
        ]
    raise bad_request(f"{where}.type", f"{kind!r} is not supported: give messages with input_text parts")


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where}.content", "give a string or a list of input_text parts", "invalid_input")
    texts: list[str] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in TEXT_PARTS:
            raise bad_request(f"{where}.content[{index}].type", f"{kind!r} is not supported: only input_text")
        texts.append(str(part.get("text", "")))
    return "".join(texts)


# endregion

# region the response


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _usage(done: Done) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=done.usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens=done.usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        total_tokens=done.usage.total_tokens,
    )


def _cut(text: str) -> str:
    """A function result as FunctionCallFinished carries it (the engine's summary), for stored ones too."""
    text = " ".join(text.split())
    return text if len(text) <= RESULT_CHARS else text[: RESULT_CHARS - 1] + "…"


def _call_item(call_id: str, function: str, arguments: dict[str, Any], status: ItemStatus) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=_id("fc"),
        type="function_call",
        call_id=call_id,
        name=function.replace(".", "-", 1),
        arguments=json.dumps(arguments),
        status=status,
    )


def _output_item(call_id: str, function: str, result: str) -> ResponseFunctionToolCallOutputItem:
    return ResponseFunctionToolCallOutputItem(
        id=_id("fco"),
        type="function_call_output",
        call_id=call_id,
        name=function.replace(".", "-", 1),
        output=result,
        status="completed",
    )


def _message_item(item_id: str, text: str, status: ItemStatus) -> ResponseOutputMessage:
    content: list[Content] = [] if status == "in_progress" else [_text_part(text)]
    return ResponseOutputMessage(
        id=item_id,
        type="message",
        role="assistant",
        status=status,
        content=content,
    )


def _text_part(text: str) -> ResponseOutputText:
    return ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])


def dump(model: BaseModel) -> dict[str, Any]:
    """The wire format: what was set (explicit nulls included), with OpenAI's field names."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


class ResponseBuilder:
    """Turns the engine's events into the response's output items and its stream events, in order."""

    def __init__(self, response_id: str, body: ResponsesRequest, created: float) -> None:
        self.id, self.body, self.created = response_id, body, created
        self.output: list[Any] = []
        self.sequence = 0
        self._message: tuple[str, int] | None = None  # the open message item: its id and output index
        self._text: list[str] = []
        self.final: OpenAIResponse | None = None  # the finished response, once there is one

    def response(self, status: ResponseStatus, **fields: Any) -> OpenAIResponse:
        return OpenAIResponse(
            id=self.id,
            object="response",
            created_at=self.created,
            status=status,
            model=self.body.model,
            output=list(self.output),
            instructions=self.body.instructions,
            previous_response_id=self.body.previous_response_id,
            max_output_tokens=self.body.max_output_tokens,
            temperature=self.body.temperature,
            top_p=self.body.top_p,
            parallel_tool_calls=False,  # the kernel runs its calls one by one
            tool_choice="auto",
            tools=[],  # the kernel's functions are the server's, not the client's tools
            metadata=self.body.metadata or {},
            error=fields.pop("error", None),
            incomplete_details=fields.pop("incomplete_details", None),
            **fields,
        )

    def _event(self, kind: type[BaseModel], **fields: Any) -> dict[str, Any]:
        event = dump(kind(sequence_number=self.sequence, **fields))
        self.sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event(ResponseCreatedEvent, type="response.created", response=self.response("in_progress")),
            self._event(ResponseInProgressEvent, type="response.in_progress", response=self.response("in_progress")),
        ]

    def feed(self, event: Event) -> list[dict[str, Any]]:
        """The stream events for one engine event (none for the ones a client has no item for)."""
        if isinstance(event, TextDelta) and event.text:
            return [*self._open_message(), self._delta(event.text)]
        if isinstance(event, FunctionCallStarted):
            call = _call_item(event.call_id, event.function, event.arguments, "completed")
            return [*self._close_message(), *self._item(call)]
        if isinstance(event, FunctionCallFinished):
            return self._item(_output_item(event.call_id, event.function, event.result))
        return []

    def finish(self, done: Done) -> list[dict[str, Any]]:
        if done.finish_reason == "content_filter":
            return self._refuse(done)
        events = self._open_message() if not self._has_answer() else []  # an empty answer is still a message
        events += self._close_message()
        if done.finish_reason == "length":
            self.final = self.response(
                "incomplete", usage=_usage(done), incomplete_details={"reason": "max_output_tokens"}
            )
            return [*events, self._event(ResponseIncompleteEvent, type="response.incomplete", response=self.final)]
        self.final = self.response("completed", usage=_usage(done), completed_at=time.time())
        return [*events, self._event(ResponseCompletedEvent, type="response.completed", response=self.final)]

    def _refuse(self, done: Done) -> list[dict[str, Any]]:
        """The content screen blocked the message or the answer: a refusal part, and the response is
        incomplete for ``content_filter``, as OpenAI's own filter leaves it. An answer streamed before it
        was blocked is not kept in the response."""
        if self._message is not None:
            self.output.pop(self._message[1])
            self._message = None
        item_id, index = _id("msg"), len(self.output)
        part = ResponseOutputRefusal(type="refusal", refusal=done.text)
        item = ResponseOutputMessage(id=item_id, type="message", role="assistant", status="completed", content=[part])
        self.output.append(item)
        begun = item.model_copy(update={"status": "in_progress", "content": []})
        place = {"item_id": item_id, "output_index": index, "content_index": 0}
        added = "response.output_item.added"
        events = [
            self._event(ResponseOutputItemAddedEvent, type=added, item=begun, output_index=index),
            self._event(ResponseRefusalDoneEvent, type="response.refusal.done", refusal=done.text, **place),
            self._event(ResponseOutputItemDoneEvent, type="response.output_item.done", item=item, output_index=index),
        ]
        self.final = self.response("incomplete", usage=_usage(done), incomplete_details={"reason": "content_filter"})
        return [*events, self._event(ResponseIncompleteEvent, type="response.incomplete", response=self.final)]

    def fail(self, message: str) -> list[dict[str, Any]]:
        failed = self.response("failed", error={"code": "server_error", "message": message})
        return [self._event(ResponseFailedEvent, type="response.failed", response=failed)]

    def _has_answer(self) -> bool:
        return self._message is not None or bool(self.output and isinstance(self.output[-1], ResponseOutputMessage))

    def _item(self, item: Any) -> list[dict[str, Any]]:
        """A call or a result: known whole when it comes, so added (in progress) and done at once."""
        index = len(self.output)
        self.output.append(item)
        begun = item.model_copy(update={"status": "in_progress"})
        added = self._event(
            ResponseOutputItemAddedEvent, type="response.output_item.added", item=begun, output_index=index
        )
        done = self._event(ResponseOutputItemDoneEvent, type="response.output_item.done", item=item, output_index=index)
        return [added, done]

    def _open_message(self) -> list[dict[str, Any]]:
        if self._message is not None:
            return []
        item_id, index = _id("msg"), len(self.output)
        self._message, self._text = (item_id, index), []
        self.output.append(_message_item(item_id, "", "in_progress"))
        return [
            self._event(
                ResponseOutputItemAddedEvent,
                type="response.output_item.added",
                item=self.output[index],
                output_index=index,
            ),
            self._event(
                ResponseContentPartAddedEvent,
                type="response.content_part.added",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=_text_part(""),
            ),
        ]

    def _delta(self, text: str) -> dict[str, Any]:
        assert self._message is not None
        item_id, index = self._message
        self._text.append(text)
        return self._event(
            ResponseTextDeltaEvent,
            type="response.output_text.delta",
            item_id=item_id,
            output_index=index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _close_message(self) -> list[dict[str, Any]]:
        if self._message is None:
            return []
        (item_id, index), text = self._message, "".join(self._text)
        self._message = None
        self.output[index] = _message_item(item_id, text, "completed")
        place = {"item_id": item_id, "output_index": index, "content_index": 0}
        return [
            self._event(ResponseTextDoneEvent, type="response.output_text.done", text=text, logprobs=[], **place),
            self._event(
                ResponseContentPartDoneEvent, type="response.content_part.done", part=_text_part(text), **place
            ),
            self._event(
                ResponseOutputItemDoneEvent,
                type="response.output_item.done",
                item=self.output[index],
                output_index=index,
            ),
        ]


# endregion

# region routes


def _engine(state: ServerState, model: str) -> ConversationEngine:
    if model == KERNEL_MODEL:
        return state.engine
    if model == state.model_name:
        return state.plain
    raise ApiError(404, f"The model '{model}' does not exist", "model_not_found", param="model")


async def _stored(state: ServerState, response_id: str, owner: str | None, param: str | None = None) -> list[Message]:
    """The messages of a stored response's conversation; OpenAI's 404 when there is none, or when it is
    another caller's (``owner``: the caller's principal; None: anyone's). Off the loop on PostgreSQL."""
    store = state.store
    if not response_id.startswith(RESPONSE_PREFIX) or not await off_the_loop(
        store, store.exists, response_id, owner=owner
    ):
        raise _not_found(response_id, param)
    return await off_the_loop(store, store.messages, response_id)


def _not_found(response_id: str, param: str | None = None) -> ApiError:
    code = "previous_response_not_found" if param else "not_found"
    return ApiError(404, f"Response with id '{response_id}' not found.", code, param=param)


@router.post("/responses", summary="Create a response (OpenAI Responses API, JSON or SSE)", response_model=None)
async def create_response(
    body: ResponsesRequest, state: State, request: Request
) -> JSONResponse | StreamingResponse | Response:
    engine = _engine(state, body.model)
    refuse_unsupported(body)
    given = input_messages(body.input)
    owner = owner_filter(request)
    history = (
        await _stored(state, body.previous_response_id, owner, "previous_response_id")
        if body.previous_response_id
        else []
    )
    options: dict[str, Any] = {}
    if body.max_output_tokens:
        options["max_tokens"] = body.max_output_tokens
    for key in ("temperature", "top_p"):
        if getattr(body, key) is not None:
            options[key] = getattr(body, key)
    state.gate.check()  # a full queue answers 429 before anything starts

    response_id = _id("resp")
    approve = approver(state, refusal)  # as on chat completions: what would need a person is refused
    instructions = [body.instructions] if body.instructions else []
    if body.store:
        turn = engine.stream(
            response_id,
            given[-1].content,
            approve=approve,
            stream=body.stream,
            options=options,
            instructions=instructions,
        )
        before = [*history, *given[:-1]]
        events = _stored_turn(state, response_id, body.model, before, turn, identity_of(request).principal)
    else:
        preamble = [Message("system", line) for line in instructions]
        events = engine.complete([*preamble, *history, *given], approve=approve, stream=body.stream, options=options)
    builder = ResponseBuilder(response_id, body, time.time())
    events = gated(state.gate, events, state.request_timeout)
    if body.stream:
        return StreamingResponse(_frames(builder, events), media_type="text/event-stream", headers=HEADERS)

    async def answer() -> tuple[OpenAIResponse | None, str | None]:
        error = "the model gave no answer"
        # To the end, not returning at Done: the gate's place is freed (and the turn ended) when it runs out.
        async for event in events:
            builder.feed(event)
            if isinstance(event, Done):
                builder.finish(event)
            elif isinstance(event, ErrorEvent):
                error = event.message
        return builder.final, error

    finished, outcome = await unless_disconnected(request.receive, answer())
    if not finished or outcome is None:
        return Response(status_code=CLIENT_GONE)
    result, error = outcome
    if result is None:
        raise ApiError(502, error or "the model gave no answer", "model_error", type="server_error")
    return JSONResponse(dump(result))


async def _stored_turn(
    state: ServerState,
    response_id: str,
    model: str,
    before: list[Message],
    turn: AsyncIterator[Event],
    owner: str,
) -> AsyncIterator[Event]:
    """A stored response's turn: its conversation (``owner``'s: only they continue it or read it back) is
    made when the turn starts (so a request that never runs leaves none), with the messages ``before`` it;
    if the turn fails or is cut short, it goes again (there is nothing to continue)."""
    service = str(state.engine.service.service_id or "")
    store = state.store
    await off_the_loop(store, store.create, id=response_id, service=service, model=model, owner=owner)
    done = cut = False
    try:
        if before:
            await off_the_loop(store, store.append_many, response_id, before)
        async for event in turn:
            done = done or isinstance(event, Done)
            yield event
    except (asyncio.CancelledError, GeneratorExit):
        cut = True  # no await may run now
        raise
    finally:
        if not done:
            with contextlib.suppress(Exception):
                if cut:
                    store.delete(response_id)
                else:
                    await off_the_loop(store, store.delete, response_id)


async def _frames(builder: ResponseBuilder, events: AsyncIterator[Event]) -> AsyncIterator[str]:
    for event in builder.start():
        yield frame(event)
    ended = False
    async for event in events:
        if isinstance(event, Done):
            produced, ended = builder.finish(event), True
        elif isinstance(event, ErrorEvent):
            produced, ended = builder.fail(event.message), True
        else:
            produced = builder.feed(event)
        for item in produced:
            yield frame(item)
    if not ended:
        for item in builder.fail("the model gave no answer"):
            yield frame(item)


@router.get("/responses/{response_id}", summary="A stored response")
async def get_response(response_id: str, state: State, request: Request) -> dict[str, Any]:
    messages = await _stored(state, response_id, owner_filter(request))
    conversation = await off_the_loop(state.store, state.store.get, response_id)
    body = ResponsesRequest(model=conversation.model or KERNEL_MODEL, input="")
    builder = ResponseBuilder(response_id, body, conversation.created_at)
    builder.output = list(stored_output(messages))
    return dump(builder.response("completed", completed_at=conversation.updated_at))


@router.delete("/responses/{response_id}", summary="Delete a stored response")
async def delete_response(response_id: str, state: State, request: Request) -> dict[str, Any]:
    # Only a response's conversation: the prefix keeps this route from deleting other conversations.
    # Another caller's response is not found either (404, as if it did not exist).
    owner = owner_filter(request)
    if not response_id.startswith(RESPONSE_PREFIX) or not await off_the_loop(
        state.store, state.store.delete, response_id, owner=owner
    ):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


def stored_output(messages: list[Message]) -> Iterator[Any]:
    """The output items of a stored response: what follows its last user message."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    for message in messages[last_user + 1 :]:
        if message.role == "assistant" and message.tool_calls:
            for call in message.tool_calls:
                yield _call_item(call.id, call.function, call.arguments, "completed")
        elif message.role == "tool":
            yield _output_item(message.call_id or "", message.name or "", _cut(message.content))
        elif message.role == "assistant":
            yield _message_item(_id("msg"), message.content, "completed")


# endregion
