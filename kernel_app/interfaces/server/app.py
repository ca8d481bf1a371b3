"""The server's app factory: ``create_app(settings)`` builds the kernel once and mounts every protocol.

Each protocol is one module: :mod:`kernel_app.interfaces.server.openai_compat` (OpenAI-compatible) and
:mod:`kernel_app.interfaces.server.openai_responses` (OpenAI's Responses API),
:mod:`kernel_app.interfaces.server.api` (our REST API, one router per concern),
:mod:`kernel_app.interfaces.server.mcp_server` (MCP over streamable HTTP at ``/mcp``),
:mod:`kernel_app.interfaces.server.web` (our own web page at ``/``, a client of the REST API).
They all drive the same kernel, engine and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from kernel_app import __version__
from kernel_app.conversation.engine import ConversationEngine
from kernel_app.conversation.store import AnyConversationStore, open_conversation_store
from kernel_app.interfaces.server import errors
from kernel_app.interfaces.server.entra import EntraValidator, entra_config
from kernel_app.interfaces.server.limits import GenerationGate
from kernel_app.interfaces.server.security import (
    OPEN_PATHS,
    Authenticate,
    BodyLimit,
    LoopbackHosts,
    ScopeMemory,
    ServerTiming,
)
from kernel_app.interfaces.server.state import ServerState

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

    from kernel_app.base.config import Settings

DEFAULT_MAX_BODY = 10 * 1024 * 1024  # bytes: documents for memory go through this too
DEFAULT_TIMEOUT = 300.0  # seconds per generation
# A turn whose server has not renewed it for this long is taken as dead and marked interrupted by whichever
# instance sweeps next (PostgreSQL only). KERNEL_APP_TURN_LEASE_S changes it (tests use a short one).
DEFAULT_TURN_LEASE = 30.0
INSTANCE_HEADER = "X-Kernel-App-Instance"  # which server (host:pid) answered: several behind one address


def create_app(
    settings: Settings | None = None,
    *,
    chat_service: ChatCompletionClientBase | None = None,
    store: AnyConversationStore | None = None,
    embedder: Any = None,
    api_keys: Iterable[str] = (),
    cors_origins: Iterable[str] = (),
    concurrency: int | None = None,
    queue: int = 8,
    request_timeout: float | None = DEFAULT_TIMEOUT,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    approve_model_functions: bool = False,
    mcp: bool = True,
    teams: dict[str, Any] | None = None,
    copilot: dict[str, Any] | None = None,
) -> FastAPI:
    """The ASGI app.

    Without ``api_keys`` or Entra ID sign-in (``settings.entra_*``) it answers only requests addressed to
    127.0.0.1 or localhost (``Host``), against DNS rebinding; with either, every route but ``/healthz`` needs
    a key or a signed-in user's token (:class:`~kernel_app.interfaces.server.security.Authenticate`).
    ``settings``: None loads
    them as the CLI does; ``chat_service`` replaces the configured one (tests, benchmarks);
    ``concurrency``: generations at once (default 1 for the embedded model, 8 for a hosted one),
    ``queue`` more may wait, then 429. ``teams``: the Agents SDK's configuration
    (:func:`kernel_app.interfaces.server.teams.teams_config`) to serve Teams at ``/api/messages``. ``copilot``: options
    of chat-copilot's web app surface at ``/copilot`` (:func:`kernel_app.interfaces.server.chat_copilot.mount`; served
    without API keys, or with Entra ID sign-in).
    """
    from kernel_app.base.config import load_settings
    from kernel_app.kernel.builder import build_kernel

    settings = settings or load_settings()
    built = build_kernel(settings, chat_service=chat_service)
    kernel = built.kernel
    store = store or open_conversation_store(settings.memory_dir, database_url=settings.database_url)
    engine = ConversationEngine(kernel, store)  # the context follows the service (n_ctx, or the model's name)
    plain = ConversationEngine(kernel, store, functions=[], system="")
    if concurrency is None:
        concurrency = 1 if settings.service == "local" and chat_service is None else 8
    state = ServerState(
        settings=settings,
        kernel=kernel,
        engine=engine,
        plain=plain,
        store=store,
        gate=GenerationGate(concurrency, queue),
        request_timeout=request_timeout,
        approve_model_functions=approve_model_functions,
        embedder=embedder,
    )
    state.load_report = built.report  # type: ignore[attr-defined]
    state.instance = f"{socket.gethostname()}:{os.getpid()}"
    lease = turn_lease()
    mcp_http = None
    if mcp:
        from kernel_app.interfaces.server.mcp_server import McpHttp

        mcp_http = McpHttp(kernel, shared_collections=settings.shared_collections)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if mcp_http is not None:
                await stack.enter_async_context(mcp_http.lifespan())
            if getattr(app.state, "copilot", None) is not None:  # chat-copilot's hub backplane, if any
                await stack.enter_async_context(app.state.copilot.running())
            state.model_loading = _start_loading_the_model(state)
            turns = None
            if state.store.backend == "postgresql":
                turns = asyncio.ensure_future(_look_after_turns(state.store, lease))
            if state.settings.database_url:  # a streamed turn's approval answered on another server
                from kernel_app.interfaces.server.pg_decisions import DecisionWakes

                state.decision_wakes = DecisionWakes(state.settings.database_url)
                state.decision_wakes.start()
                stack.push_async_callback(state.decision_wakes.stop)
            state.ready = True
            try:
                yield
            finally:
                state.ready = False
                if getattr(app.state, "teams", None) is not None:  # answers what Teams was told was accepted
                    await app.state.teams.stop()
                if turns is not None:
                    turns.cancel()
                if state.plans is not None:  # the REST plans' store (api/plans.py)
                    state.plans.close()
                    state.plans = None
                if state.uploads is not None:  # the REST uploads' bytes on PostgreSQL (api/memory.py)
                    state.uploads.close()
                    state.uploads = None

    app = FastAPI(
        title="Kernel App",
        version=__version__,
        summary="Semantic Kernel plugins, plans, memory and conversations over HTTP, OpenAI-compatible and MCP.",
        lifespan=lifespan,
    )
    app.state.kernel_app = state
    errors.install(app, database=bool(settings.database_url))

    from kernel_app.interfaces.server import openai_compat, openai_responses, web
    from kernel_app.interfaces.server.api import conversations, evals, functions, health, memory, plans

    app.include_router(health.router)
    app.include_router(openai_compat.router)
    app.include_router(openai_responses.router)
    app.include_router(functions.router)
    app.include_router(conversations.router)
    app.include_router(plans.router)
    app.include_router(memory.router)
    app.include_router(evals.router)
    app.include_router(web.router)  # the web page at /
    if mcp_http is not None:
        from starlette.routing import Route

        # A Route, not a Mount: "/mcp" itself is the endpoint (a Mount would redirect it to "/mcp/").
        app.router.routes.append(Route("/mcp", endpoint=mcp_http, methods=["GET", "POST", "DELETE"]))

    app.add_middleware(ServerTiming)  # innermost of ours: what the app itself took
    app.add_middleware(InstanceHeader, instance=state.instance)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    keys = list(api_keys)
    entra = entra_validator(settings)
    app.state.web_sign_in = web.sign_in(bool(keys), entra)
    app.add_middleware(ScopeMemory, shared=settings.shared_collections)  # the caller's memory collections
    # Nothing below runs unauthenticated but the web page's files: the page asks for the key itself.
    app.add_middleware(Authenticate, api_keys=keys, entra=entra, open_paths=OPEN_PATHS | web.OPEN_PATHS)
    if not keys and entra is None:
        app.add_middleware(LoopbackHosts)
    if teams is not None:  # outside the API-key check: the SDK checks the channel's JWT on that route
        from kernel_app.interfaces.server.teams import mount

        mount(app, state, teams, max_body_bytes=max_body_bytes)
    origins = list(cors_origins)
    if origins:  # outermost: a browser's preflight carries no key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["*"],
        )
    from kernel_app.interfaces.server.chat_copilot import mount as mount_copilot

    mount_copilot(  # outermost: own CORS, which allows --cors-origin too
        app,
        state,
        api_keys=keys,
        entra=entra,
        max_body_bytes=max_body_bytes,
        cors_origins=origins,
        **(copilot or {}),
    )
    return app


def entra_validator(settings: Settings) -> EntraValidator | None:
    """Entra ID sign-in's token validator when the settings turn it on (tenant and client id), else None."""
    config = entra_config(settings)
    if config is None:
        return None
    logging.getLogger("kernel_app.server").info(
        "Entra ID sign-in: tenant %s, API %s, scope %s", config.tenant_id, config.client_id, config.scope
    )
    return EntraValidator(config)


def turn_lease() -> float:
    """Seconds from ``KERNEL_APP_TURN_LEASE_S`` (default :data:`DEFAULT_TURN_LEASE`); a one-line error if bad."""
    from kernel_app.base.errors import ConfigError

    raw = os.environ.get("KERNEL_APP_TURN_LEASE_S", "").strip()
    if not raw:
        return DEFAULT_TURN_LEASE
    try:
        lease = float(raw)
    except ValueError:
        lease = 0.0
    if not lease > 0:
        raise ConfigError(f"KERNEL_APP_TURN_LEASE_S={raw!r}: expected a number of seconds above 0 (default 30)")
    return lease


class InstanceHeader:
    """Adds ``X-Kernel-App-Instance: host:pid`` to every response: behind a load balancer, or with
    ``--workers``, it says which process answered (logs and tests need to know)."""

    def __init__(self, app: Any, instance: str) -> None:
        self.app, self.header = app, (INSTANCE_HEADER.lower().encode(), instance.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        return await self.app(scope, receive, send_with_header)


async def _look_after_turns(store: AnyConversationStore, lease: float) -> None:
    """Every few seconds: renew this instance's running turns, and mark interrupted the turns of instances
    that stopped renewing theirs (killed mid-turn). The first sweep runs at start, so the next start of a
    lone server marks what its previous run left. A database that is away is retried at the next beat."""
    log = logging.getLogger("kernel_app.server")
    beat = max(0.2, lease / 5)
    while True:
        try:
            await asyncio.to_thread(store.keep_turns_alive)
            marked = await asyncio.to_thread(store.mark_interrupted_turns, lease)
            if marked:
                log.warning("marked %d turn(s) interrupted: their server stopped mid-turn", marked)
        except Exception as error:  # the database away: the 503s say so; this loop just tries again
            log.debug("turn heartbeat failed: %s", error)
        await asyncio.sleep(beat)


def _start_loading_the_model(state: ServerState) -> asyncio.Future[Any] | None:
    """The embedded model loads at start-up, on a thread, so /readyz can say when it is ready and the
    first request does not pay for it. Hosted services have nothing to load (None)."""
    if "kernel_app.providers.llama.service" not in sys.modules:  # imported only when the service is local
        return None
    from kernel_app.providers.llama.service import LocalLlamaChatCompletion

    try:
        service = state.engine.service
    except Exception:  # no chat service: /readyz says so
        return None
    if not isinstance(service, LocalLlamaChatCompletion):
        return None
    return asyncio.ensure_future(asyncio.to_thread(service.model))
