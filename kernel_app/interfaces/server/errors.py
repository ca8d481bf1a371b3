"""Errors in OpenAI's error JSON on every route: ``{"error": {"message", "type", "code"}}``, one line."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kernel_app.base.errors import FunctionNotFoundError, KernelAppError, UsageError, innermost_message
from kernel_app.interfaces.server.limits import Busy

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.type = type or TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(message: str, type: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


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


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.message, error.type, error.code), status_code=error.status)

    @app.exception_handler(Busy)
    async def busy(request: Request, error: Busy) -> JSONResponse:
        return error_response(429, str(error), "busy", **{"Retry-After": str(error.retry_after)})

    @app.exception_handler(KernelAppError)
    async def kernel_app_error(request: Request, error: KernelAppError) -> JSONResponse:
        return error_response(status_of(error), str(error).splitlines()[0] if str(error) else type(error).__name__)

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
