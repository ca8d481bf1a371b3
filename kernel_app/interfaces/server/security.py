"""Who may call the server: loopback by default; any other address only with API keys."""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from kernel_app.base.errors import ConfigError

API_KEYS_VARIABLE = "KERNEL_APP_API_KEYS"
OPEN_PATHS = frozenset({"/healthz"})  # everything else needs the bearer key when keys are set

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


def check_bind(host: str, api_keys: Iterable[str]) -> None:
    """Refuse to serve beyond this machine without keys (and with a key too short to be one)."""
    keys = list(api_keys)
    if is_loopback(host):
        return
    if not keys:
        raise ConfigError(
            f"refusing to listen on {host} without API keys: set {API_KEYS_VARIABLE}=KEY[,KEY...] "
            "(clients then send 'Authorization: Bearer KEY') or bind 127.0.0.1"
        )
    if any(len(key) < 16 for key in keys):
        raise ConfigError(f"{API_KEYS_VARIABLE}: every key needs at least 16 characters")


class BearerAuth:
    """ASGI middleware: with keys, every HTTP request but OPEN_PATHS needs ``Authorization: Bearer KEY``."""

    def __init__(self, app: ASGIApp, api_keys: Iterable[str]) -> None:
        self.app = app
        self.keys = [key.encode() for key in api_keys]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.keys or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and any(hmac.compare_digest(token.strip(), key) for key in self.keys):
            await self.app(scope, receive, send)
            return
        await send_error(
            send,
            401,
            "missing or wrong API key: send 'Authorization: Bearer KEY'",
            "invalid_api_key",
            headers=[(b"www-authenticate", b"Bearer")],
        )


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
    send: Any, status: int, message: str, code: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """An OpenAI-style error JSON answered straight from a middleware (before any route runs)."""
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": code}}).encode()
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
