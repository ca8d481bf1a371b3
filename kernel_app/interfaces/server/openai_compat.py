"""The OpenAI-compatible API: ``/v1/models``, ``/v1/chat/completions`` (JSON and SSE), ``/v1/embeddings``.

Model ``kernel-app`` is the kernel itself: the conversation engine runs function calling over the
plugins (READ functions run; prompt functions too with ``--approve-model-functions``; anything with
an effect is refused, since an OpenAI client cannot be asked) and answers. The underlying model's
own name is a plain pass-through: the client's messages, no tools. Requests are stateless, as in
OpenAI's API: the client sends the whole conversation each time. A client's own ``tools`` are
refused with 400 (never silently dropped).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kernel_app.conversation.events import ContentBlocked, Done, ErrorEvent, Event, TextDelta
from kernel_app.conversation.store import Message
from kernel_app.interfaces.server.chat_surface import approver, refusal
from kernel_app.interfaces.server.errors import ApiError, error_body
from kernel_app.interfaces.server.limits import CLIENT_GONE, gated, unless_disconnected
from kernel_app.interfaces.server.state import KERNEL_MODEL, State

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
log = logging.getLogger("kernel_app.interfaces.server")


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int = 1
    tools: list[dict[str, Any]] | None = None
    user: str | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


@router.get("/models", summary="Models: kernel-app and the underlying model")
async def list_models(state: State) -> dict[str, Any]:
    created = int(state.started)
    data = [{"id": KERNEL_MODEL, "object": "model", "created": created, "owned_by": "kernel-app"}]
    if state.model_name and state.model_name != KERNEL_MODEL:
        data.append({"id": state.model_name, "object": "model", "created": created, "owned_by": "kernel-app"})
    return {"object": "list", "data": data}


@router.get("/models/{model_id}", summary="One model")
async def get_model(model_id: str, state: State) -> dict[str, Any]:
    for model in (await list_models(state))["data"]:
        if model["id"] == model_id:
            return model
    raise ApiError(404, f"The model '{model_id}' does not exist", "model_not_found")


@router.post("/chat/completions", summary="Chat completion (OpenAI wire format, JSON or SSE)", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, state: State, request: Request
) -> JSONResponse | StreamingResponse | Response:
    if body.model == KERNEL_MODEL:
        engine = state.engine
    elif body.model == state.model_name:
        engine = state.plain
    else:
        raise ApiError(404, f"The model '{body.model}' does not exist", "model_not_found")
    if body.tools:
        raise ApiError(
            400,
            "client-side tools are not supported: model kernel-app calls the kernel's own functions",
            "tools_not_supported",
        )
    if body.n != 1:
        raise ApiError(400, "n must be 1", "unsupported_n")
    messages = [_message(m) for m in body.messages]
    if not any(m.role == "user" for m in messages):
        raise ApiError(400, "messages: at least one user message is needed", "no_user_message")
    options: dict[str, Any] = {}
    if body.max_completion_tokens or body.max_tokens:
        options["max_tokens"] = body.max_completion_tokens or body.max_tokens
    for key in ("temperature", "top_p"):
        if getattr(body, key) is not None:
            options[key] = getattr(body, key)
    state.gate.check()  # a full queue answers 429 before anything starts

    approve = approver(state, refusal)  # the chat surfaces' rule; the rest is refused, not asked
    events = gated(
        state.gate,
        engine.complete(messages, approve=approve, stream=body.stream, options=options),
        state.request_timeout,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _chunks(events, completion_id, created, body.model, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def answer() -> tuple[Done | None, str | None]:
        done, error = None, None
        async for event in events:
            if isinstance(event, Done):
                done = event
            elif isinstance(event, ErrorEvent):
                error = event.message
        return done, error

    def message(done: Done) -> dict[str, Any]:
        if done.finish_reason == "content_filter":  # what the screen blocked: a refusal, as OpenAI's models give
            return {"role": "assistant", "content": None, "refusal": done.text}
        return {"role": "assistant", "content": done.text, "refusal": None}

    finished, outcome = await unless_disconnected(request.receive, answer())
    if not finished or outcome is None:
        return Response(status_code=CLIENT_GONE)
    done, error = outcome
    if error is not None or done is None:
        raise ApiError(502, error or "the model gave no answer", "model_error", type="server_error")
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": message(done),
                    "logprobs": None,
                    "finish_reason": finish_reason(done),
                }
            ],
            "usage": _usage(done),
        }
    )


async def _chunks(
    events: AsyncIterator[Event], completion_id: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[str]:
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def frame(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

    yield frame([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}])
    async for event in events:
        if isinstance(event, TextDelta) and event.text:
            yield frame([{"index": 0, "delta": {"content": event.text}, "logprobs": None, "finish_reason": None}])
        elif isinstance(event, ContentBlocked):  # the refusal goes as OpenAI streams one: delta.refusal
            refusal = {"refusal": event.describe()}
            yield frame([{"index": 0, "delta": refusal, "logprobs": None, "finish_reason": None}])
        elif isinstance(event, Done):
            yield frame([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason(event)}])
            if include_usage:
                yield frame([], usage=_usage(event))
        elif isinstance(event, ErrorEvent):
            yield f"data: {json.dumps(error_body(event.message, 'server_error', 'model_error'))}\n\n"
    yield "data: [DONE]\n\n"


def finish_reason(done: Done) -> str:
    """OpenAI's finish reason: ``length``, ``content_filter`` (the content screen blocked it) or ``stop``."""
    return done.finish_reason if done.finish_reason in ("length", "content_filter") else "stop"


def _usage(done: Done) -> dict[str, int]:
    return {
        "prompt_tokens": done.usage.prompt_tokens,
        "completion_tokens": done.usage.completion_tokens,
        "total_tokens": done.usage.total_tokens,
    }


def _message(message: ChatMessageIn) -> Message:
    content = message.content
    if isinstance(content, list):  # content parts: only text parts are understood
        texts = []
        for part in content:
            if part.get("type") != "text":
                raise ApiError(400, f"messages: content part type {part.get('type')!r} is not supported")
            texts.append(str(part.get("text", "")))
        content = "".join(texts)
    role = "system" if message.role == "developer" else message.role
    if role == "tool":
        # Results of a client's tools: we never sent tool calls, so there is nothing for them to answer.
        raise ApiError(400, "messages: tool messages are not supported (client-side tools are refused)")
    return Message(role, content or "")


@router.post("/embeddings", summary="Embeddings with the configured embedder")
async def embeddings(body: EmbeddingRequest, state: State) -> dict[str, Any]:
    import asyncio

    import numpy as np

    embedder = state.get_embedder()
    name = str(getattr(embedder, "name", "embedder"))
    if body.model not in (KERNEL_MODEL, name):
        raise ApiError(
            404, f"The model '{body.model}' does not exist: use '{name}' or '{KERNEL_MODEL}'", "model_not_found"
        )
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts or any(not isinstance(t, str) or not t for t in texts):
        raise ApiError(400, "input: give a non-empty string or a list of non-empty strings")
    vectors = np.asarray(await asyncio.to_thread(embedder.embed, texts), dtype="<f4")
    data = []
    for index, vector in enumerate(vectors):
        encoded: Any = (
            base64.b64encode(vector.tobytes()).decode() if body.encoding_format == "base64" else vector.tolist()
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(t.split()) for t in texts)
    return {"object": "list", "data": data, "model": name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
