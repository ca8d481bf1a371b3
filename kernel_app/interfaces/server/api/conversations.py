"""Conversations: create, list, get with messages, post a message (SSE of engine events), approve, delete.

Each conversation is its creator's (the caller's principal: a signed-in user, an API key): another caller
gets 404 on every route, as if it did not exist, and lists only their own. Key-less local use sees all.
On PostgreSQL the store's calls run in a thread (:mod:`kernel_app.conversation.off_loop`), so that the
event loop serves other requests during their round trips.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from kernel_app.conversation.engine import collect
from kernel_app.conversation.events import ApprovalNeeded
from kernel_app.conversation.off_loop import off_the_loop
from kernel_app.conversation.store import ConversationNotFoundError
from kernel_app.interfaces.server import state as state_module
from kernel_app.interfaces.server.api.approvals import ApprovalDecided, shared_approvals
from kernel_app.interfaces.server.errors import ApiError
from kernel_app.interfaces.server.limits import CLIENT_GONE, gated, unless_disconnected
from kernel_app.interfaces.server.security import identity_of, owner_filter
from kernel_app.interfaces.server.sse import event_stream
from kernel_app.interfaces.server.state import State

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class NewConversation(BaseModel):
    title: str = Field(default="", max_length=200)


class UserMessage(BaseModel):
    content: str = Field(min_length=1, description="What the user says")
    stream: bool = Field(
        default=True,
        description="Server-sent events (text_delta, function_call_started/finished, approval_needed, "
        "error, done); false: one JSON answer, where functions that need approval are refused",
    )


class ApprovalAnswer(BaseModel):
    approved: bool


@router.post("", status_code=201, summary="Start a conversation")
async def create(body: NewConversation, state: State, request: Request) -> dict[str, Any]:
    owner = identity_of(request).principal
    return (await off_the_loop(state.store, state.engine.create, title=body.title, owner=owner)).to_dict()


@router.get("", summary="Conversations, most recent first")
async def list_conversations(
    state: State,
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> dict[str, Any]:
    found = await off_the_loop(state.store, state.store.list, limit=limit, offset=offset, owner=owner_filter(request))
    return {"data": [c.to_dict() for c in found]}


@router.get("/{conversation_id}", summary="A conversation with its messages (function calls and results included)")
async def get(conversation_id: str, state: State, request: Request) -> dict[str, Any]:
    conversation = await off_the_loop(state.store, state.store.get, conversation_id, owner=owner_filter(request))
    messages = await off_the_loop(state.store, state.store.messages, conversation_id)
    return {**conversation.to_dict(), "messages": [m.to_dict() for m in messages]}


@router.delete("/{conversation_id}", status_code=204, summary="Delete a conversation and its messages")
async def delete(conversation_id: str, state: State, request: Request) -> Response:
    if not await off_the_loop(state.store, state.store.delete, conversation_id, owner=owner_filter(request)):
        raise ApiError(404, f"no conversation {conversation_id!r}", "conversation_not_found")
    return Response(status_code=204)


@router.post("/{conversation_id}/messages", summary="Say something; the answer streams as events", response_model=None)
async def post_message(
    conversation_id: str, body: UserMessage, state: State, request: Request
) -> StreamingResponse | Response | dict[str, Any]:
    # 404 before anything runs, also for another caller's. A streamed answer needs it before its first
    # event (the status is sent with it); a JSON answer gets it from the engine's start of the turn, which
    # checks the owner in the same round trip to the store as it reads the conversation.
    owner = owner_filter(request)
    if body.stream and not await off_the_loop(state.store, state.store.exists, conversation_id, owner=owner):
        raise ConversationNotFoundError(f"no conversation {conversation_id!r}: `kernel-app chat --list` lists them")
    state.gate.check()

    shared = shared_approvals(state) if body.stream else None

    async def approve(request: ApprovalNeeded) -> bool:
        if shared is not None:  # database_url: the answer may reach any server (api/approvals.py)
            return await shared.wait(request, state_module.APPROVAL_TIMEOUT)
        return await state.wait_for_approval(conversation_id, request)

    # A client that disconnects mid-turn (or the request deadline) leaves what the turn produced, marked
    # interrupted, as a turn whose server died is marked (the engine's keep_if_cut).
    events = state.engine.stream(
        conversation_id,
        body.content,
        approve=approve if body.stream else None,
        stream=body.stream,
        keep_if_cut=True,
        owner=owner,
    )
    if shared is not None:
        events = shared.follow(conversation_id, events)
    gated_events = gated(state.gate, events, state.request_timeout)
    if body.stream:
        return event_stream(gated_events)
    finished, result = await unless_disconnected(request.receive, collect(gated_events))
    if not finished or result is None:
        return Response(status_code=CLIENT_GONE)
    if result.error is not None:
        raise ApiError(502, result.error, "model_error", type="server_error")
    return {
        "conversation_id": conversation_id,
        "text": result.text,
        "finish_reason": result.finish_reason,
        "usage": result.usage.to_dict(),
        "events": [e.to_dict() for e in result.events],
    }


@router.post("/{conversation_id}/approvals/{approval_id}", summary="Answer an approval_needed event")
async def answer_approval(
    conversation_id: str, approval_id: str, body: ApprovalAnswer, state: State, request: Request
) -> dict[str, Any]:
    # Only the conversation's owner answers its approvals: another caller's conversation is not found (404)
    # before the approval is looked at, so nothing about it is told and nothing runs.
    await off_the_loop(state.store, state.store.get, conversation_id, owner=owner_filter(request))
    shared = shared_approvals(state)
    try:
        answered = (
            await shared.answer(conversation_id, approval_id, body.approved)
            if shared is not None
            else state.answer_approval(conversation_id, approval_id, body.approved)
        )
    except ApprovalDecided as decided:  # a second answer (from any server): what happened
        raise ApiError(409, str(decided), "approval_already_answered") from None
    if not answered:
        raise ApiError(404, f"no pending approval {approval_id!r} in this conversation", "approval_not_found")
    return {"approval_id": approval_id, "approved": body.approved}
