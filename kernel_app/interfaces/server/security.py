"""Who may call the server: loopback by default; any other address only with API keys or Entra ID sign-in."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from kernel_app.base import telemetry
from kernel_app.base.errors import ConfigError
from kernel_app.base.identity import Identity
from kernel_app.interfaces.server.entra import EntraValidator, Refused, Unavailable
from memories.scope import CollectionScope, using_scope

API_KEYS_VARIABLE = "KERNEL_APP_API_KEYS"
OPEN_PATHS = frozenset({"/healthz"})  # everything else needs the bearer key when keys are set

log = logging.getLogger("kernel_app.server.auth")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def api_keys_from_env(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """``KERNEL_APP_API_KEYS``: comma-separated keys."""
    value = (environ if environ is not None else os.environ).get(API_KEYS_VARIABLE, "")
    return [key.strip() for key in value.split(",") if key.strip()]


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_keys: Iterable[str], signed_in: bool = False) -> None:
    """Refuse to serve beyond this machine without keys or sign-in (and with a key too short to be one)."""
    keys = list(api_keys)
    if is_loopback(host):
        return
    if any(len(key) < 16 for key in keys):
        raise ConfigError(f"{API_KEYS_VARIABLE}: every key needs at least 16 characters")
    if keys or signed_in:
        return
    raise ConfigError(
        f"refusing to listen on {host} without API keys or sign-in: set {API_KEYS_VARIABLE}=KEY[,KEY...] "
        "(clients then send 'Authorization: Bearer KEY'), or Entra ID sign-in (KERNEL_APP_ENTRA_TENANT_ID and "
        "KERNEL_APP_ENTRA_CLIENT_ID), or bind 127.0.0.1"
    )


def identity_of(scope_or_request: Any) -> Identity:
    """Who made this request (:class:`Authenticate` put it there); ``local`` where nothing did."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    found = (scope.get("state") or {}).get("identity")
    return found if isinstance(found, Identity) else Identity.local()


def owner_filter(scope_or_request: Any) -> str | None:
    """Whose data this request may see, as the stores take it: the caller's principal, so that a signed-in
    user or an API key sees only their own; None for key-less ``local`` use, which sees everything, as
    before sign-in (everyone on this machine is one user)."""
    identity = identity_of(scope_or_request)
    return None if identity.kind == "local" else identity.principal


def collection_scope(scope_or_request: Any, shared: Iterable[str] = ()) -> CollectionScope:
    """The memory collections this request's caller sees (:mod:`memories.scope`): their own, and the
    ``shared`` ones (the ``shared_collections`` setting); key-less local use sees the stored names."""
    return CollectionScope.of(identity_of(scope_or_request).principal, shared)


class ScopeMemory:
    """ASGI middleware, inside :class:`Authenticate`: the request runs in its caller's collection scope
    (``memories.scope.current``), so the kernel's ``memory`` functions, called by the model, a plan or a
    command during it (and the tasks it starts), see the caller's collections."""

    def __init__(self, app: ASGIApp, shared: Iterable[str] = ()) -> None:
        self.app = app
        self.shared = frozenset(shared)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with using_scope(collection_scope(scope, self.shared)):
            await self.app(scope, receive, send)


class Authenticate:
    """ASGI middleware: with API keys or Entra ID sign-in, every request but ``open_paths`` needs
    ``Authorization: Bearer KEY|TOKEN``; the caller's :class:`Identity` goes into ``scope["state"]``
    (``request.state.identity``). Without either, everyone is ``local`` (loopback only: see
    :class:`LoopbackHosts`).

    ``query_token``: also take the token from the ``access_token`` query parameter, where a SignalR client
    puts it (a browser's WebSocket cannot send a header). Refusals: 401 with ``WWW-Authenticate: Bearer``
    when nothing proves who calls, 403 for a valid token that may not call, 503 with ``Retry-After`` while
    the identity provider cannot be read; a WebSocket is closed before it is accepted (1008, or 1013 "try
    again later" for the 503). The reason goes to the log in one line, never the token.
    """

    def __init__(
        self,
        app: ASGIApp,
        api_keys: Iterable[str] = (),
        entra: EntraValidator | None = None,
        *,
        open_paths: Iterable[str] = OPEN_PATHS,
        query_token: bool = False,
    ) -> None:
        self.app = app
        self.keys = [key.encode() for key in api_keys]
        self.entra = entra
        self.open_paths = frozenset(open_paths)
        self.query_token = query_token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self.keys and self.entra is None:
            await self._call_as(Identity.local(), scope, receive, send)
            return
        if scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        try:
            identity = await self._identify(scope)
        except Refused as refused:
            await self._refuse(scope, send, refused)
            return
        await self._call_as(identity, scope, receive, send)

    async def _call_as(self, identity: Identity, scope: Scope, receive: Any, send: Any) -> None:
        _set_identity(scope, identity)
        with telemetry.as_enduser(identity.principal):  # the turns' and plans' spans name their user
            await self.app(scope, receive, send)

    async def _identify(self, scope: Scope) -> Identity:
        token = self._token(scope)
        if not token:
            what = "an API key" if self.entra is None else ("an API key or " if self.keys else "") + "a sign-in token"
            raise Refused(401, f"no bearer token: send 'Authorization: Bearer' with {what}")
        raw = token.encode()
        for key in self.keys:
            if hmac.compare_digest(raw, key):
                return Identity.for_key(key)
        if self.entra is None:
            raise Refused(401, "wrong API key")
        if token.count(".") != 2:
            raise Refused(401, "the bearer token is neither an API key nor a sign-in token")
        # The first token (and a rotated key) fetches from the identity provider: off the event loop.
        return await asyncio.to_thread(self.entra.validate, token)

    def _token(self, scope: Scope) -> str:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            return value.strip().decode("latin-1")
        if self.query_token:
            query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
            values = query.get("access_token") or []
            if values and values[0].strip():
                return values[0].strip()
        return ""

    async def _refuse(self, scope: Scope, send: Any, refused: Refused) -> None:
        client = scope.get("client") or ("?", 0)
        log.warning(
            "refused %s %s from %s: %d %s",
            scope.get("method", "WS"),
            scope.get("path"),
            client[0],
            refused.status,
            refused.reason,
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013 if isinstance(refused, Unavailable) else 1008})
            return
        if isinstance(refused, Unavailable):
            retry = [(b"retry-after", str(refused.retry_after).encode())]
            await send_error(send, 503, refused.reason, "identity_provider_unavailable", retry, kind="server_error")
        elif refused.status == 401:
            code = "invalid_api_key" if self.entra is None else "invalid_token"
            headers = [(b"www-authenticate", b'Bearer error="invalid_token"' if self.entra else b"Bearer")]
            await send_error(send, 401, refused.reason, code, headers=headers)
        else:
            await send_error(send, 403, refused.reason, "insufficient_scope")


def _set_identity(scope: Scope, identity: Identity) -> None:
    state = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    state["identity"] = identity


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(send, self.max_bytes)


class _TooLarge(Exception):
    pass


async def _too_large(send: Any, max_bytes: int) -> None:
    await send_error(send, 413, f"request body over {max_bytes} bytes", "request_too_large")


async def send_error(
    send: Any,
    status: int,
    message: str,
    code: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    kind: str = "invalid_request_error",
) -> None:
    """An OpenAI-style error JSON answered straight from a middleware (before any route runs)."""
    body = json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class LoopbackHosts:
    """ASGI middleware for a server without keys: only requests addressed to a loopback name.

    A web page the user visits cannot reach a keyless server on 127.0.0.1 through DNS rebinding
    (its requests carry the attacker's host name in ``Host``); with keys the key is the guard.
    """

    NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.lower() not in self.NAMES:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                message = (
                    f"host {host!r} is not this machine: a server without API keys answers "
                    "only requests to 127.0.0.1 or localhost"
                )
                await send_error(send, 421, message, "host_not_allowed")
                return
        await self.app(scope, receive, send)


class ServerTiming:
    """ASGI middleware: ``Server-Timing: app;dur=MS``, the time from the request's arrival to its response
    head (for a JSON answer: all the work; for a stream: until it starts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import time

        began = time.perf_counter()

        async def timed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                duration = (time.perf_counter() - began) * 1000
                headers = [*message.get("headers", []), (b"server-timing", f"app;dur={duration:.3f}".encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)
