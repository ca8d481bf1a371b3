"""chat-copilot's web app on ``kernel-app serve``: its REST endpoints under ``/copilot`` and its SignalR hub.

The unmodified React web app of microsoft/chat-copilot (``REACT_APP_AUTH_TYPE=None``) pointed at
``http://127.0.0.1:PORT/copilot/`` lists, creates and deletes chats, sends messages and shows the
streamed replies, uploads documents (answered from, with citations) and approves or rejects plans. A
chat is a conversation of the engine's store (``kernel-app chat --list`` shows it); what the web app
sees beyond that (message ids, plan and document messages, citations) is kept beside the store
(:mod:`.records`).

With ``database_url`` the records are in PostgreSQL and the hub relays through it
(:mod:`.backplane`), so several instances behind one address serve the same chats: a reply computed
on one reaches a browser connected to another.

The hub answers at ``/copilot/messageRelayHub`` and at ``/messageRelayHub``: the web app resolves
``new URL('/messageRelayHub', base)``, which drops the base's path.

Who may call: without Entra ID sign-in the web app sends no key (with ``authType`` None it has none), and a
browser's WebSocket cannot send a header, so this surface is then served only by a server without API keys,
which answers only requests addressed to 127.0.0.1 or localhost; with keys alone it is off (and says so in
the log). With sign-in (``entra_tenant_id`` and ``entra_client_id``) ``/authConfig`` answers ``AzureAd``,
the web app signs its user in with MSAL and sends the token on every REST call and, as SignalR does, in
the hub's ``access_token`` query parameter; API keys are accepted beside it. Each user then sees only the
chats they take part in (:mod:`.routes`, :mod:`.hub`). CORS allows
the web app's origin: ``http://localhost:3000`` unless ``KERNEL_APP_COPILOT_ORIGINS`` (comma-separated)
says otherwise, and every ``serve --cors-origin``; a WebSocket from another page's origin is refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kernel_app.interfaces.server.entra import EntraValidator
    from kernel_app.interfaces.server.state import ServerState

PREFIX = "/copilot"
HUB = "/messageRelayHub"
ORIGINS_VARIABLE = "KERNEL_APP_COPILOT_ORIGINS"
DEFAULT_ORIGINS = ("http://localhost:3000",)
# What the web app reads before it signs anyone in (chat-copilot's backend allows them anonymously too).
OPEN_PATHS = frozenset({"/authConfig", "/maintenanceStatus", "/healthz"})

log = logging.getLogger("kernel_app.copilot")


def origins_from_env(environ: dict[str, str] | None = None) -> list[str]:
    value = (environ if environ is not None else os.environ).get(ORIGINS_VARIABLE, "")
    found = [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
    return found or list(DEFAULT_ORIGINS)


def allowed_origins(origins: Iterable[str] | None, cors_origins: Iterable[str] = ()) -> list[str]:
    """The origins the web app may call from: ``origins`` (or the environment's, or the default) and the
    server's own ``--cors-origin`` ones, which the web app served from another origin needs too."""
    allowed = list(origins) if origins is not None else origins_from_env()
    for origin in cors_origins:
        if origin.rstrip("/") not in allowed:
            allowed.append(origin.rstrip("/"))
    return allowed


def mount(
    app: FastAPI,
    state: ServerState,
    *,
    api_keys: Iterable[str] = (),
    entra: EntraValidator | None = None,
    max_body_bytes: int = 10 * 1024 * 1024,
    origins: Iterable[str] | None = None,
    cors_origins: Iterable[str] = (),
    ping_interval: float | None = None,
) -> bool:
    """Serve the web app's endpoints on ``app`` (outermost, with their own CORS); False when the server has
    API keys and no sign-in (then nothing is served: see the module doc). ``origins`` replaces the
    environment's (or default) web app origins; ``cors_origins`` (the server's ``--cors-origin``) are
    allowed beside them."""
    keys = list(api_keys)
    if keys and entra is None:
        log.info("chat-copilot web app: off, since the server has API keys (the web app cannot send one)")
        return False
    from fastapi import FastAPI
    from starlette.middleware.cors import CORSMiddleware

    from kernel_app.interfaces.server import errors
    from kernel_app.interfaces.server.chat_copilot import routes
    from kernel_app.interfaces.server.chat_copilot.bot import CopilotBot
    from kernel_app.interfaces.server.chat_copilot.hub import DEFAULT_PING_INTERVAL, Hub
    from kernel_app.interfaces.server.chat_copilot.records import open_records
    from kernel_app.interfaces.server.security import Authenticate, BodyLimit, LoopbackHosts, ScopeMemory

    allowed = allowed_origins(origins, cors_origins)
    hub = Hub(ping_interval or DEFAULT_PING_INTERVAL)
    database_url = state.settings.database_url
    records = open_records(state.store.path, database_url)  # shared by every instance with database_url
    if database_url:
        from kernel_app.interfaces.server.chat_copilot.backplane import Backplane

        hub.backplane = Backplane(database_url, hub.deliver)  # started in the server's lifespan
    hub.user_of = routes.user_of  # who each hub connection is, from its token (None: local use)
    hub.member = lambda chat_id, user: user in records.participants(chat_id)
    bot = CopilotBot(state, hub, records)
    sub = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    sub.state.kernel_app = state
    sub.state.copilot = routes.Copilot(state, hub, records, bot, allowed)
    errors.install(sub)
    routes.install(sub)
    guarded: Any = ScopeMemory(BodyLimit(sub, max_bytes=max_body_bytes), state.settings.shared_collections)
    if entra is not None:  # inside CORS: a browser's preflight carries no token
        guarded = Authenticate(guarded, keys, entra, open_paths=OPEN_PATHS, query_token=True)
    else:
        guarded = Authenticate(guarded)  # everyone is the local user
    asgi: Any = CORSMiddleware(
        guarded,
        allow_origins=allowed,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["*"],
    )
    app.state.copilot = sub.state.copilot
    app.add_middleware(CopilotRoute, copilot=asgi if entra is not None else LoopbackHosts(asgi))
    return True


class CopilotRoute:
    """ASGI middleware: ``/copilot/...`` (prefix stripped) and ``/messageRelayHub`` go to the web app's
    endpoints, everything else on down."""

    def __init__(self, app: Any, copilot: Any) -> None:
        self.app = app
        self.copilot = copilot

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        if path == PREFIX or path.startswith(PREFIX + "/"):
            inner = path[len(PREFIX) :] or "/"
            scope = {**scope, "path": inner, "raw_path": inner.encode()}
            await self.copilot(scope, receive, send)
            return
        if path == HUB or path.startswith(HUB + "/"):
            await self.copilot(scope, receive, send)
            return
        await self.app(scope, receive, send)
