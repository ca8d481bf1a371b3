"""The function catalogue and invoking one function: ``/v1/functions``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from kernel_app.base.errors import KernelAppError, innermost_message
from kernel_app.conversation.events import (
    ContentBlocked,
    Done,
    ErrorEvent,
    Event,
    FunctionCallFinished,
    FunctionCallStarted,
    TextDelta,
)
from kernel_app.interfaces.server.limits import CLIENT_GONE, gated, unless_disconnected
from kernel_app.interfaces.server.sse import event_stream
from kernel_app.interfaces.server.state import ServerState, State
from kernel_app.providers.content_safety import ContentBlockedError

router = APIRouter(prefix="/v1/functions", tags=["functions"])


class Invocation(BaseModel):
    input: str | None = Field(default=None, description="The text input (the function's `input` variable)")
    arguments: dict[str, str] = Field(default_factory=dict, description="Other variables, by name")
    stream: bool = Field(default=False, description="Answer as server-sent events (text deltas, then done)")


def describe(function: Any) -> dict[str, Any]:
    from kernel_app.base.effects import effect_of

    metadata = function.metadata
    return {
        "name": f"{metadata.plugin_name}.{metadata.name}",
        "plugin": metadata.plugin_name,
        "function": metadata.name,
        "description": (metadata.description or "").strip(),
        "kind": "prompt" if metadata.is_prompt else "native",
        "effect": effect_of(function).value,
        "parameters": [
            {
                "name": p.name,
                "description": p.description or "",
                "type": p.type_ or "string",
                "required": bool(p.is_required),
                "default": p.default_value,
            }
            for p in metadata.parameters
            if p.include_in_function_choices and p.name != "kernel"
        ],
    }


def _functions(state: ServerState) -> list[Any]:
    functions = []
    for plugin in state.kernel.plugins.values():
        functions.extend(plugin.functions.values())
    return sorted(functions, key=lambda f: (f.metadata.plugin_name or "", f.metadata.name))


@router.get("", summary="Every function the kernel can run")
async def list_functions(state: State) -> dict[str, Any]:
    return {"data": [describe(f) for f in _functions(state)]}


@router.get("/{name}", summary="One function, by Plugin.Function")
async def get_function(name: str, state: State) -> dict[str, Any]:
    from kernel_app.kernel.runner import resolve_function

    return describe(resolve_function(state.kernel, name))


@router.post("/{name}/invoke", summary="Run a function (JSON, or SSE with stream=true)", response_model=None)
async def invoke(
    name: str, body: Invocation, state: State, request: Request
) -> dict[str, Any] | StreamingResponse | Response:
    from kernel_app.kernel.runner import resolve_function

    function = resolve_function(state.kernel, name)  # 404 before anything waits
    qualified = f"{function.metadata.plugin_name}.{function.metadata.name}"
    state.gate.check()
    events = gated(state.gate, _run(state, function, qualified, body), state.request_timeout)
    if body.stream:
        return event_stream(events)

    async def answer() -> dict[str, Any]:
        result: dict[str, Any] = {"function": qualified}
        blocked = False
        async for event in events:
            blocked = blocked or isinstance(event, ContentBlocked)
            if isinstance(event, Done):
                result.update(result=event.text, usage=event.usage.to_dict())
            elif isinstance(event, ErrorEvent):
                from kernel_app.interfaces.server.errors import ApiError

                raise ApiError(422, event.message, "content_blocked" if blocked else "function_failed")
        return result

    finished, result = await unless_disconnected(request.receive, answer())
    return result if finished and result is not None else Response(status_code=CLIENT_GONE)


async def _run(state: ServerState, function: Any, qualified: str, body: Invocation) -> AsyncIterator[Event]:
    """An explicit request to run one function: the caller asked for it, so nothing needs approval."""
    from kernel_app.kernel.runner import run_chain

    arguments = {**body.arguments, **({"input": body.input} if body.input is not None else {})}
    yield FunctionCallStarted("invoke", qualified, arguments)
    began = time.perf_counter()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    chain = run_chain(
        state.kernel,
        [function],
        input=body.input,
        variables=body.arguments,
        on_chunk=pieces.put_nowait if body.stream else None,
    )
    task = None
    try:
        if body.stream:  # the chain in a task of its own, so its pieces can be yielded as they come
            task = asyncio.ensure_future(chain)
            task.add_done_callback(lambda _: pieces.put_nowait(None))
            while (piece := await pieces.get()) is not None:
                yield TextDelta(piece)
            run = await task
        else:  # nothing to stream: no task, no queue (a served request's overhead)
            run = await chain
    except ContentBlockedError as error:  # the event for a client that renders them, then the one-line error
        yield ContentBlocked(error.stage, error.verdict.category, error.verdict.reason)
        yield ErrorEvent(str(error))
        return
    except KernelAppError as error:
        yield ErrorEvent(str(error))
        return
    except Exception as error:
        yield ErrorEvent(f"{qualified} failed: {innermost_message(error)}")
        return
    finally:
        if task is not None and not task.done():
            task.cancel()
    usage = run.steps[-1].usage if run.steps else None
    yield FunctionCallFinished("invoke", qualified, arguments, run.result[:200], True, time.perf_counter() - began)
    yield Done("", run.result, usage) if usage is not None else Done("", run.result)
