"""The web page's routes: the page and its files (open: the page asks for a key itself), how this server
signs callers in, and markdown rendered to safe HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from kernel_app.interfaces.server.errors import ApiError
from kernel_app.interfaces.server.web.render import render_markdown

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page's files, by name: what /web/{name} serves (nothing else under the package is reachable).
ASSETS = {path.name: path for path in STATIC.iterdir() if path.suffix in MEDIA_TYPES and path.name != "index.html"}
# Served without a key: the page has none until the user types it (it keeps it in sessionStorage).
OPEN_PATHS = frozenset({"/", "/web/config.json", *(f"/web/{name}" for name in ASSETS)})
# Only our own files run, and the page reaches only this server: a line of the model's that slipped
# through as HTML still could not load a script or send anything elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_TEXTS = 200

router = APIRouter(tags=["web page"])


class ToRender(BaseModel):
    texts: list[str] = Field(max_length=MAX_TEXTS, description="Markdown texts (answers, results)")


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return _file(STATIC / "index.html")


@router.get("/web/config.json", include_in_schema=False)
async def config(request: Request) -> JSONResponse:
    return JSONResponse(getattr(request.app.state, "web_sign_in", {"mode": "none"}), headers=SECURITY_HEADERS)


@router.get("/web/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise ApiError(404, f"no file {name!r} in the web page", "not_found")
    return _file(path)


@router.post("/web/render", summary="Markdown to safe HTML (raw HTML shown as text, only http(s) links)")
async def render(body: ToRender) -> dict[str, list[str]]:
    return {"html": [render_markdown(text) for text in body.texts]}


def sign_in(api_keys: bool, entra: Any) -> dict[str, Any]:
    """What the page shows about signing in: ``mode`` none, key, entra or key-or-entra, and for Entra ID
    the tenant and the API's scope, so the user knows which token to paste."""
    if entra is None:
        return {"mode": "key" if api_keys else "none"}
    config = entra.config
    return {
        "mode": "key-or-entra" if api_keys else "entra",
        "tenant_id": config.tenant_id,
        "client_id": config.client_id,
        "scope": config.api_scope,
        "authority": config.authority_url,
    }


def _file(path: Path) -> FileResponse:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)
