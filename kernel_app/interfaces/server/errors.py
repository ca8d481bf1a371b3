"""Errors in OpenAI's error JSON on every route: ``{"error": {"message", "type", "code"}}``, one line.

The database going away (``database_url``'s PostgreSQL unreachable, or a connection broken mid-request)
is a 503 with ``Retry-After`` on whatever route needed it, and one log line per
:data:`DATABASE_LOG_INTERVAL_S` rather than a traceback per request.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kernel_app.base.errors import FunctionNotFoundError, KernelAppError, UsageError, innermost_message
from kernel_app.interfaces.server.limits import Busy

log = logging.getLogger("kernel_app.server")

DATABASE_RETRY_AFTER_S = 5  # the pool reconnects by itself: a client may try again after this long
DATABASE_LOG_INTERVAL_S = 30.0  # one log line per this long while the database stays away

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}


class ApiError(Exception):
    """``param``: the request field the error is about (OpenAI's ``error.param``), when there is one."""

    def __init__(
        self, status: int, message: str, code: str | None = None, type: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.type = type or TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(
    message: str, type: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(status: int, message: str, code: str | None = None, **headers: str) -> JSONResponse:
    kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return JSONResponse(error_body(message, kind, code), status_code=status, headers=headers or None)


def status_of(error: KernelAppError) -> int:
    from kernel_app.conversation.store import ConversationNotFoundError
    from memories.errors import CollectionNotFoundError, StoreBusyError

    if isinstance(error, ConversationNotFoundError | FunctionNotFoundError | CollectionNotFoundError):
        return 404
    if isinstance(error, StoreBusyError):
        return 503
    if isinstance(error, UsageError):
        return 400
    return 422


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the database cannot be reached or its connection broke.

    psycopg's OperationalError covers both (and psycopg_pool's PoolTimeout is one); psycopg is looked up
    in ``sys.modules`` only, so a server without ``database_url`` never imports it.
    """
    from kernel_app.providers.postgres.errors import DatabaseUnavailableError

    psycopg = sys.modules.get("psycopg")
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnavailableError):
            return True
        if psycopg is not None and isinstance(current, psycopg.OperationalError):
            return True
        current = current.__cause__ or current.__context__
    return False


class RepeatLimiter:
    """Says whether to log a failure now: the first time, then once per ``interval`` while it repeats."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = float("-inf")
        self.suppressed = 0

    def should_log(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval:
            self.suppressed += 1
            return False
        self._last = now
        return True


def database_down_response(error: BaseException, limiter: RepeatLimiter) -> JSONResponse:
    reason = " ".join(innermost_message(error).split())
    if limiter.should_log():
        repeats = f" ({limiter.suppressed} more since the last report)" if limiter.suppressed else ""
        limiter.suppressed = 0
        log.error("the database is unavailable, answering 503: %s%s", reason, repeats)
    return error_response(
        503,
        f"the database is unavailable, try again in {DATABASE_RETRY_AFTER_S} s: {reason}",
        "database_unavailable",
        **{"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def install(app: FastAPI, *, database: bool = False) -> None:
    """``database``: the server uses PostgreSQL (``database_url``), so psycopg's errors get their own handler."""
    database_log = RepeatLimiter(DATABASE_LOG_INTERVAL_S)
    if database:
        import psycopg

        # Its own handler, not the catch-all one: Starlette re-raises what reaches ``Exception``'s handler
        # so that the server logs its traceback, which is what a database outage must not do per request.
        @app.exception_handler(psycopg.OperationalError)
        async def database_down(request: Request, error: Exception) -> JSONResponse:
            return database_down_response(error, database_log)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.message, error.type, error.code, error.param), status_code=error.status)

    @app.exception_handler(Busy)
    async def busy(request: Request, error: Busy) -> JSONResponse:
        return error_response(429, str(error), "busy", **{"Retry-After": str(error.retry_after)})

    @app.exception_handler(KernelAppError)
    async def kernel_app_error(request: Request, error: KernelAppError) -> JSONResponse:
        if database_unavailable(error):
            return database_down_response(error, database_log)
        from kernel_app.providers.content_safety import ContentBlockedError, ScreenError

        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, ContentBlockedError):  # what was sent (or would be answered) was blocked
            return error_response(422, message, "content_blocked")
        if isinstance(error, ScreenError):  # the hosted screen failed: nothing went on unscreened
            return error_response(503, message, "content_safety_unavailable")
        return error_response(status_of(error), message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(400, f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {innermost_message(error)}")
