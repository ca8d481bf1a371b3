"""The web app's HTTP endpoints, in its shapes (camelCase JSON, numeric enums), over the engine and store.

Paths are relative to the web app's base URI (``/copilot`` on our server): ``GET /authConfig``,
``/maintenanceStatus`` (200, empty body), ``/info``, ``/speechToken``; ``/chats`` (list, create),
``/chats/{id}`` (get, edit, delete), ``/chats/{id}/messages`` (newest first; ask), ``/chats/{id}/plan``
(approve or reject a plan), ``/participants``, ``/documents`` (multipart ``formFiles``), ``/memories``;
and one of Kernel App's own: ``GET /chats/{id}/documents/{document id}``, an uploaded document's bytes.

Who is asking: with Entra ID sign-in the token's user (``oid.tid``, as chat-copilot's backend names a
signed-in user; an API key's caller is its principal), never what the body says; with ``authType`` None
the web app is always its one default user, and a client may name another with ``userId`` / ``userName``
variables in its Ask (only the user who asked may decide a plan).

Whose chats: with sign-in a chat is seen by its participants only (its creator, and whoever joined it
through chat-copilot's invite: ``POST /chats/{id}/participants``); to anyone else every route of the chat
answers 404, as for a chat that does not exist, and ``GET /chats`` lists only one's own. A plan is decided
by its asker only (another participant gets 404 too). Key-less local use sees every chat, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile, WebSocket
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from kernel_app import __version__
from kernel_app.interfaces.server.chat_copilot import shapes
from kernel_app.interfaces.server.chat_copilot.records import DocumentRecord, ViewMessage
from kernel_app.interfaces.server.entra import entra_config
from kernel_app.interfaces.server.errors import ApiError
from kernel_app.interfaces.server.security import identity_of
from kernel_app.kernel.screening import screen_of

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kernel_app.interfaces.server.chat_copilot.bot import CopilotBot
    from kernel_app.interfaces.server.chat_copilot.hub import Hub
    from kernel_app.interfaces.server.chat_copilot.records import AnyCopilotRecords
    from kernel_app.interfaces.server.state import ServerState

GREETING = (
    "Hello! I am Kernel App. Ask me something, upload a document and ask about it, or try "
    "/plan Write a poem about bread, then translate it to French (you approve the plan before it runs). "
    "/help lists the commands."
)


@dataclass
class Copilot:
    """What the endpoints share."""

    state: ServerState
    hub: Hub
    records: AnyCopilotRecords
    bot: CopilotBot
    origins: list[str]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the server runs: the hub's backplane (with database_url), closed with the records' pool."""
        backplane = self.hub.backplane
        if backplane is not None:
            await backplane.start()
        try:
            yield
        finally:
            self.bot.stopped()
            if backplane is not None:
                await backplane.stop()
            if self.records.backend == "postgresql":
                self.records.close()

    def chat(self, chat_id: str, viewer: str | None = None) -> Any:
        """The chat's conversation; 404 unless it is a chat of the web app, still in the store, and ``viewer``
        (a user id; None: anyone, key-less local use) is one of its participants."""
        if (
            self.records.chat(chat_id) is None
            or (viewer is not None and viewer not in self.records.participants(chat_id))
            or not self.state.store.exists(chat_id)
        ):
            raise ApiError(404, f"no chat {chat_id!r}: GET /chats lists them", "chat_not_found")
        return self.state.store.get(chat_id)

    def session_json(self, chat_id: str, viewer: str | None = None) -> dict[str, Any]:
        return shapes.chat_session(self.chat(chat_id, viewer), self.records.chat(chat_id))


async def get_copilot(request: Request) -> Copilot:
    return request.app.state.copilot


Ctx = Annotated[Copilot, Depends(get_copilot)]


class Ask(BaseModel):
    input: str = ""
    variables: list[dict[str, Any]] = Field(default_factory=list)


class NewChat(BaseModel):
    title: str = Field(default="", max_length=200)


class ChatEdit(BaseModel):
    title: str | None = Field(default=None, max_length=200)
    systemDescription: str | None = None
    memoryBalance: float | None = Field(default=None, ge=0, le=1)


def user_of(scope_or_request: Any) -> str | None:
    """The caller's user id as the web app names its user, from who they proved to be: ``oid.tid`` for a
    signed-in user (the id chat-copilot's backend gives one, which its web app's MSAL account carries), the
    principal for an API key; None for key-less local use (the client says who it is, and sees everything)."""
    identity = identity_of(scope_or_request)
    if identity.kind == "entra":
        return f"{identity.object_id}.{identity.tenant_id}"
    if identity.kind == "key":
        return identity.principal
    return None


def caller(request: Request, ask: Ask | None = None) -> tuple[str, str]:
    """Who asks: with sign-in (or a key) :func:`user_of` and the token's name, whatever the body says;
    without, the ``userId`` / ``userName`` variables or the web app's default user."""
    user_id = user_of(request)
    if user_id is not None:
        return user_id, identity_of(request).name
    variables = ask.variables if ask is not None else []
    user_id = shapes.variable(variables, "userId") or shapes.DEFAULT_USER_ID
    user_name = shapes.variable(variables, "userName") or (
        shapes.DEFAULT_USER_NAME if user_id == shapes.DEFAULT_USER_ID else user_id
    )
    return user_id, user_name


router = APIRouter()


# region the app's probes


@router.get("/authConfig")
async def auth_config(ctx: Ctx) -> dict[str, str]:
    """``AzureAd`` with sign-in: the web app then signs its user in with MSAL at this authority and asks
    for this API scope; ``None`` without (the web app's one default user)."""
    config = entra_config(ctx.state.settings)
    if config is None:
        return {"authType": "None", "aadAuthority": "", "aadClientId": "", "aadApiScope": ""}
    return {
        "authType": "AzureAd",
        "aadAuthority": config.authority_url,
        "aadClientId": config.web_app_client_id,
        "aadApiScope": config.api_scope,
    }


@router.get("/maintenanceStatus")
async def maintenance_status() -> Response:
    """Not in maintenance: 200 with an EMPTY body (any JSON body keeps the web app on its probe screen)."""
    return Response(status_code=200)


@router.get("/info")
async def info(ctx: Ctx) -> dict[str, Any]:
    return {
        "memoryStore": {"types": ["KernelApp"], "selectedType": "KernelApp"},
        "availablePlugins": [],
        "version": __version__,
        # The web app shows that answers are screened when a screen is on (content_safety is not "off").
        "isContentSafetyEnabled": screen_of(ctx.state.kernel) is not None,
    }


@router.get("/speechToken")
async def speech_token() -> dict[str, Any]:
    return {"token": None, "region": None, "isSuccess": False}


# endregion

# region chats


@router.get("/chats")
async def list_chats(ctx: Ctx, request: Request) -> list[dict[str, Any]]:
    store, viewer = ctx.state.store, user_of(request)
    ids = [i for i in ctx.records.chat_ids() if viewer is None or viewer in ctx.records.participants(i)]
    conversations = [store.get(i) for i in ids if store.exists(i)]
    conversations.sort(key=lambda c: c.updated_at, reverse=True)
    return [shapes.chat_session(c, ctx.records.chat(c.id)) for c in conversations]


@router.post("/chats", status_code=201)
async def create_chat(body: NewChat, ctx: Ctx, request: Request) -> dict[str, Any]:
    conversation = ctx.state.engine.create(title=body.title, owner=identity_of(request).principal)
    ctx.records.add_chat(conversation.id)
    user_id, _ = caller(request)
    ctx.records.join(conversation.id, user_id)
    greeting = ctx.records.save(ViewMessage(conversation.id, shapes.BOT_ROLE, shapes.BOT, "Kernel App", GREETING))
    return {"chatSession": ctx.session_json(conversation.id), "initialBotMessage": shapes.chat_message(greeting)}


@router.get("/chats/{chat_id}")
async def get_chat(chat_id: str, ctx: Ctx, request: Request) -> dict[str, Any]:
    return ctx.session_json(chat_id, user_of(request))


@router.patch("/chats/{chat_id}")
async def edit_chat(chat_id: str, body: ChatEdit, ctx: Ctx, request: Request) -> dict[str, Any]:
    ctx.chat(chat_id, user_of(request))
    if body.title is not None:
        ctx.state.store.update(chat_id, title=body.title)
    ctx.records.update_chat(chat_id, system_description=body.systemDescription, memory_balance=body.memoryBalance)
    session = ctx.session_json(chat_id)
    await ctx.hub.send(chat_id, "ChatEdited", session)
    return session


@router.delete("/chats/{chat_id}", status_code=204)
async def delete_chat(chat_id: str, ctx: Ctx, request: Request) -> Response:
    ctx.chat(chat_id, user_of(request))
    user_id, _ = caller(request)
    ctx.bot.forget(chat_id)
    ctx.state.store.delete(chat_id)
    if ctx.records.documents(chat_id):
        memory = ctx.state.memory()
        collection = ctx.bot.collection(chat_id)
        if collection in {c.name for c in await asyncio.to_thread(memory.collections)}:
            await asyncio.to_thread(memory.drop, collection)
    ctx.records.delete_chat(chat_id)
    await ctx.hub.send(chat_id, "ChatDeleted", chat_id, user_id)
    return Response(status_code=204)


# endregion

# region messages


@router.get("/chats/{chat_id}/messages")
async def messages(
    chat_id: str,
    ctx: Ctx,
    request: Request,
    skip: int | None = Query(None, ge=0),
    startIdx: int | None = Query(None, ge=0),
    count: int = Query(100, ge=-1, le=10_000),
) -> list[dict[str, Any]]:
    """Newest first: the web app's own messages, and any turn added to the conversation elsewhere (REPL)."""
    ctx.chat(chat_id, user_of(request))
    covered = ctx.records.covered(chat_id)
    # (time, then the order each store wrote them: a turn's messages share one commit's time)
    keyed = [((m.created_at, 0, n), ctx.bot.plan_state(m)) for n, m in enumerate(ctx.records.messages(chat_id))]
    keyed += [
        ((m.created_at, 1, m.seq), shapes.store_message(chat_id, m))
        for m in ctx.state.store.messages(chat_id)
        if m.seq not in covered and m.role in ("user", "assistant") and m.content
    ]
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    shown = [message for _, message in keyed]
    start = skip if skip is not None else (startIdx or 0)
    page = shown[start:] if count < 0 else shown[start : start + count]
    return [shapes.chat_message(m) for m in page]


@router.post("/chats/{chat_id}/messages")
async def ask(chat_id: str, body: Ask, ctx: Ctx, request: Request) -> dict[str, Any]:
    """The reply streams over the hub; this answers with the AskResult when it is done (or a plan waits)."""
    ctx.chat(chat_id, user_of(request))
    if not body.input.strip():
        raise ApiError(400, "input: empty message; type something", "empty_input")
    user_id, user_name = caller(request, body)
    return await ctx.bot.ask(chat_id, body.input, user_id, user_name)


async def process_plan(chat_id: str, body: Ask, ctx: Ctx, request: Request) -> Any:
    """Approve (``state`` 1) or reject (2) the plan in the ``proposedPlan`` variable; answers when it ran."""
    from kernel_app.interfaces.server.chat_copilot.bot import DecisionError
    from kernel_app.interfaces.server.errors import error_body

    viewer = user_of(request)
    ctx.chat(chat_id, viewer)
    raw = shapes.variable(body.variables, "proposedPlan")
    if raw is None:
        raise ApiError(400, "variables: add proposedPlan, the plan message's content with its state set", "no_plan")
    try:
        posted = json.loads(raw)
    except ValueError:
        raise ApiError(400, "proposedPlan: not JSON; post the plan message's content back", "bad_plan") from None
    if not isinstance(posted, dict):
        raise ApiError(400, "proposedPlan: not a JSON object", "bad_plan")
    user_id, user_name = caller(request, body)
    try:
        return await ctx.bot.decide(chat_id, posted, user_id, user_name, body.input or "")
    except DecisionError as error:
        if viewer is not None and error.code == "not_plan_owner":  # with sign-in: not told that it exists
            message_id = str(posted.get("generatedPlanMessageId") or "")
            message = f"proposedPlan.generatedPlanMessageId: no plan {message_id!r} waits in this chat"
            return JSONResponse(error_body(message, code="plan_not_found"), status_code=404)
        return JSONResponse(error_body(str(error), code=error.code), status_code=error.status)


router.add_api_route("/chats/{chat_id}/plan", process_plan, methods=["POST"])
router.add_api_route("/chats/{chat_id}/processPlan", process_plan, methods=["POST"])  # older web app versions


# endregion

# region participants, documents, memories


@router.get("/chats/{chat_id}/participants")
async def participants(chat_id: str, ctx: Ctx, request: Request) -> list[dict[str, str]]:
    ctx.chat(chat_id, user_of(request))
    return [{"userId": user, "chatId": chat_id} for user in ctx.records.participants(chat_id)]


@router.post("/chats/{chat_id}/participants")
async def join(chat_id: str, ctx: Ctx, request: Request) -> dict[str, str]:
    """chat-copilot's invite: whoever has the chat's id (its invite link) joins it, and sees it from now on."""
    ctx.chat(chat_id)
    user_id, _ = caller(request)
    if ctx.records.join(chat_id, user_id):
        await ctx.hub.send(chat_id, "UserJoined", chat_id, user_id)
    return {"userId": user_id, "chatId": chat_id}


@router.get("/chats/{chat_id}/documents")
async def documents(chat_id: str, ctx: Ctx, request: Request) -> list[dict[str, Any]]:
    ctx.chat(chat_id, user_of(request))
    return [shapes.document_source(d) for d in ctx.records.documents(chat_id)]


@router.post("/chats/{chat_id}/documents")
async def upload(
    chat_id: str,
    ctx: Ctx,
    request: Request,
    formFiles: list[UploadFile] = File(...),  # noqa: B008  (the web app's field name)
) -> dict[str, Any]:
    """Each file goes into the chat's memory collection; questions in the chat are then answered from it.

    A document the content screen flags is refused whole (docs/content-safety.md): the chat gets a bot
    message saying which and why, and when no document of the upload went in the answer is a 400 naming it."""
    from kernel_app.interfaces.server.uploads import keep_uploads, refused_uploads, source_namer
    from memories.ingest import ingest

    ctx.chat(chat_id, user_of(request))
    memory = ctx.state.memory()
    collection = ctx.bot.collection(chat_id)
    saved = await keep_uploads(memory, collection, formFiles)
    refused = await refused_uploads(screen_of(ctx.state.kernel), [path for path, _ in saved])
    for event in refused.values():
        await ctx.bot.say(chat_id, event.describe())
    clean = [path for path, _ in saved if path not in refused]
    # Chunks named uploads/COLLECTION/NAME, not by this server's path: a re-upload through any server replaces them.
    report = await asyncio.to_thread(ingest, memory, collection, clean, source_of=source_namer(collection))
    failed = {Path(path).name: reason for path, reason in report.failed}
    failed.update({path.name: event.describe() for path, event in refused.items()})
    stored = [(path, size) for path, size in saved if path.name not in failed]
    if not stored:
        name, reason = next(iter(failed.items()), ("the upload", "nothing to store"))
        raise ApiError(400, f"{name}: {reason}", "document_not_stored")
    user_id, user_name = caller(request)
    now = time.time()
    shared = ctx.records.backend == "postgresql"  # keeps the bytes, for every server to serve
    for path, size in stored:
        chunks = len(await asyncio.to_thread(_chunks_of, memory, collection, path))
        content = await asyncio.to_thread(path.read_bytes) if shared else None
        await asyncio.to_thread(
            ctx.records.add_document,
            DocumentRecord(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{chat_id}/{path.name}").hex,
                chat_id,
                path.name,
                size,
                chunks,
                user_id,
                now,
            ),
            content,
        )
    message = ViewMessage(
        chat_id,
        shapes.USER,
        user_id,
        user_name,
        shapes.document_content([(path.name, size) for path, size in stored]),
        type=shapes.DOCUMENT,
    )
    ctx.records.save(message)
    await ctx.hub.send(chat_id, "ReceiveMessage", chat_id, user_id, shapes.chat_message(message))
    return shapes.chat_message(message)


@router.get("/chats/{chat_id}/documents/{document_id}")
async def download(chat_id: str, document_id: str, ctx: Ctx, request: Request) -> Response:
    """An uploaded document's bytes: from the database with ``database_url`` (whichever server took the
    upload), else from this server's ``uploads/`` copy."""
    from kernel_app.interfaces.server.uploads import upload_path

    ctx.chat(chat_id, user_of(request))
    document = next((d for d in ctx.records.documents(chat_id) if d.id == document_id), None)
    if document is None:
        message = f"no document {document_id!r} in this chat: GET .../documents lists them"
        raise ApiError(404, message, "document_not_found")
    content = await asyncio.to_thread(ctx.records.document_content, document_id)
    if content is None:
        path = upload_path(ctx.state.memory(), ctx.bot.collection(chat_id), document.name)
        content = await asyncio.to_thread(path.read_bytes) if path.is_file() else None
    if content is None:  # uploaded to another server before the database kept documents' bytes
        raise ApiError(
            404, f"{document.name}: its bytes are not on this server; upload it again", "document_bytes_missing"
        )
    return Response(
        content,
        media_type=_MEDIA_TYPES.get(Path(document.name).suffix.lower(), "application/octet-stream"),
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.name)}"},
    )


_MEDIA_TYPES = {".md": "text/markdown; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".pdf": "application/pdf"}


@router.get("/chats/{chat_id}/memories")
async def memories(chat_id: str, ctx: Ctx, request: Request, type: str = Query("")) -> list[str]:
    """chat-copilot's extracted working and long-term memories: Kernel App keeps none (documents are in
    the chat's memory collection, answered from with citations)."""
    ctx.chat(chat_id, user_of(request))
    return []


# endregion


def _chunks_of(memory: Any, collection: str, path: Path) -> list[str]:
    from memories.uploads import upload_source

    return list(memory.metadata(collection, where={"source": upload_source(collection, path.name)}))


def install(app: FastAPI) -> None:
    """The endpoints and the hub (and its negotiation) on the web app's sub-application."""
    from kernel_app.interfaces.server.chat_copilot import HUB
    from kernel_app.interfaces.server.chat_copilot.hub import negotiation

    app.include_router(router)

    async def hub(socket: WebSocket) -> None:
        copilot: Copilot = socket.app.state.copilot
        origin = socket.headers.get("origin")
        if origin is not None and origin.rstrip("/") not in copilot.origins:
            await socket.close(code=1008)  # another site's page: a browser always says where it comes from
            return
        await copilot.hub.serve(socket)

    async def negotiate() -> dict[str, Any]:
        return negotiation()

    app.add_api_websocket_route(HUB, hub)
    app.add_api_route(HUB + "/negotiate", negotiate, methods=["POST"])
