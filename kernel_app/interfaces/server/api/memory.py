"""Memory: collections, save, search (with metadata filters), ask (an answer with sources), delete,
and document upload (ingested into a collection, with progress events) and download.

Collection names are the caller's (:mod:`memories.scope`): a signed-in user's (or an API key's) ``docs``
is stored under a name of their own, so another caller neither lists nor reaches it (404, as for a
collection that does not exist); the ``shared_collections`` setting names those everyone shares. Key-less
local use keeps the stored names, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from kernel_app.interfaces.server.errors import ApiError
from kernel_app.interfaces.server.security import collection_scope
from kernel_app.interfaces.server.sse import HEADERS, frame
from kernel_app.interfaces.server.state import ServerState, State
from memories.errors import CollectionNotFoundError
from memories.scope import CollectionScope

router = APIRouter(prefix="/v1/memory", tags=["memory"])


class Record(BaseModel):
    text: str = Field(min_length=1)
    id: str | None = Field(default=None, description="Empty for a generated id; an existing id is replaced")
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class Search(BaseModel):
    query: str = Field(min_length=1)
    limit: int = Field(default=5, ge=1, le=100)
    min_relevance: float = Field(default=0.0, ge=-1, le=1)
    where: dict[str, Any] | None = Field(default=None, description="Metadata filter (see docs/memory.md)")


class Question(BaseModel):
    question: str = Field(min_length=1)
    limit: int = Field(default=5, ge=1, le=50)
    min_relevance: float = Field(default=0.2, ge=-1, le=1)
    where: dict[str, Any] | None = None


@router.get("", summary="Memory collections")
async def collections(state: State, request: Request) -> dict[str, Any]:
    store, scope = state.memory(), _scope(state, request)
    found = [(scope.visible(c.name), c) for c in await asyncio.to_thread(store.collections)]
    return {
        "data": [
            {"name": name, "count": c.count, "embedder": c.embedder, "dimensions": c.dimensions}
            for name, c in found
            if name is not None
        ]
    }


@router.post("/{collection}/records", status_code=201, summary="Save a text")
async def save(collection: str, body: Record, state: State, request: Request) -> dict[str, Any]:
    store, scope = state.memory(), _scope(state, request)
    stored = scope.stored(collection)
    record_id = await _scoped(
        scope, store, store.save, stored, body.text, body.id, body.description, body.metadata or None
    )
    return {"collection": collection, "id": record_id}


@router.post("/{collection}/search", summary="The saved texts most similar to a query")
async def search(collection: str, body: Search, state: State, request: Request) -> dict[str, Any]:
    store, scope = state.memory(), _scope(state, request)
    stored = scope.stored(collection)
    hits = await _scoped(scope, store, store.search, stored, body.query, body.limit, body.min_relevance, body.where)
    return {
        "data": [
            {
                "id": hit.record.id,
                "text": hit.record.text,
                "description": hit.record.description,
                "metadata": hit.record.metadata,
                "relevance": round(float(hit.relevance), 4),
            }
            for hit in hits
        ]
    }


@router.post("/{collection}/ask", summary="Answer only from the collection, citing record ids")
async def ask(collection: str, body: Question, state: State, request: Request) -> dict[str, Any]:
    from kernel_app.kernel.sourced_answer import answer_with_sources
    from kernel_app.providers.content_safety import collect_blocks

    store, scope = state.memory(), _scope(state, request)
    stored = scope.stored(collection)
    state.gate.check()
    await state.gate.acquire()
    try:
        with collect_blocks() as blocks:  # records the content screen withheld (a flagged question: 422)
            answer = await answer_with_sources(
                state.kernel,
                store,
                stored,
                body.question,
                limit=body.limit,
                min_relevance=body.min_relevance,
                where=body.where,
            )
    except CollectionNotFoundError as error:
        raise scope.not_found(error, [c.name for c in await asyncio.to_thread(store.collections)]) from None
    finally:
        state.gate.release()
    return {
        "answer": answer.answer,
        "grounded": answer.grounded,
        "cited": answer.cited,
        "sources": [
            {"id": hit.record.id, "text": hit.record.text, "relevance": round(float(hit.relevance), 4)}
            for hit in answer.sources
        ],
        "text": answer.with_sources_line(),
        "blocked": [{"type": "content_blocked", "stage": b.stage, **_verdict(b.verdict)} for b in blocks],
    }


# ``:path``: an ingested chunk's id holds its file's path ("/srv/docs/a.md#0"), slashes and all.
@router.get("/{collection}/records/{record_id:path}", summary="One saved text, by id (what an answer's sources cite)")
async def record(collection: str, record_id: str, state: State, request: Request) -> dict[str, Any]:
    store, scope = state.memory(), _scope(state, request)  # another user's collection: not found
    found = await _scoped(scope, store, store.get, scope.stored(collection), record_id)
    if found is None:
        raise ApiError(404, f"no record {record_id!r} in {collection!r}", "record_not_found")
    return {
        "collection": collection,
        "id": found.id,
        "text": found.text,
        "description": found.description,
        "metadata": found.metadata,
        "created_at": found.created_at.isoformat() if found.created_at else None,
        "updated_at": found.updated_at.isoformat() if found.updated_at else None,
    }


def _verdict(verdict: Any) -> dict[str, str]:
    return {"category": verdict.category, "reason": verdict.reason}


@router.delete("/{collection}/records/{record_id}", status_code=204, summary="Delete a saved text")
async def delete(collection: str, record_id: str, state: State, request: Request) -> Response:
    store, scope = state.memory(), _scope(state, request)
    if not await _scoped(scope, store, store.delete, scope.stored(collection), record_id):
        raise ApiError(404, f"no record {record_id!r} in {collection!r}", "record_not_found")
    return Response(status_code=204)


@router.get("/{collection}/records", summary="Saved texts, a page at a time")
async def records(
    collection: str,
    state: State,
    request: Request,
    limit: int = Query(20, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> dict[str, Any]:
    store, scope = state.memory(), _scope(state, request)
    found = await _scoped(scope, store, store.list, scope.stored(collection), limit, offset)
    return {"data": [{"id": r.id, "text": r.text, "metadata": r.metadata} for r in found]}


@router.delete("/{collection}", status_code=204, summary="Drop a collection and every record in it")
async def drop(collection: str, state: State, request: Request) -> Response:
    store, scope = state.memory(), _scope(state, request)
    stored = scope.stored(collection)
    if stored not in {c.name for c in await asyncio.to_thread(store.collections)}:
        raise ApiError(404, f"no memory collection {collection!r}", "collection_not_found")
    await asyncio.to_thread(store.drop, stored)
    return Response(status_code=204)


@router.post(
    "/{collection}/documents",
    status_code=201,
    summary="Upload documents (.txt, .md, .pdf) into a collection; stream=true: progress as events",
    response_model=None,
)
async def upload(
    collection: str,
    state: State,
    request: Request,
    files: list[UploadFile] = File(..., description="The documents (multipart field 'files')"),  # noqa: B008
    stream: bool = Query(False, description="Server-sent events: ingest_progress per file, then done"),
) -> dict[str, Any] | StreamingResponse:
    """Each file is kept under the data folder (``uploads/COLLECTION/NAME``) and ingested from there:
    its chunks' ``source`` is ``uploads/COLLECTION/NAME``, so uploading a file of the same name again (through
    any server) replaces its chunks, an unchanged one is skipped. With ``database_url`` its bytes are kept
    in PostgreSQL too, so any server serves the download.

    Each document passes the content screen first (docs/content-safety.md): one with a flagged chunk is
    refused whole, listed under ``failed`` and ``blocked`` (a ``content_blocked`` event when streamed);
    when every document is refused, the answer is a 422 naming the first and why."""
    from kernel_app.interfaces.server.uploads import keep_uploads, refused_uploads, source_namer
    from kernel_app.kernel.screening import screen_of

    store = state.memory()
    stored = _scope(state, request).stored(collection)  # the caller's own collection, its uploads' folder too
    paths = [path for path, _ in await keep_uploads(store, stored, files)]
    refused = await refused_uploads(screen_of(state.kernel), paths)
    if refused and len(refused) == len(paths):
        first = next(iter(refused.values()))
        message = f"content safety refused {first.reason} ({first.category}): nothing was stored"
        raise ApiError(422, message, "content_blocked")
    paths = [path for path in paths if path not in refused]
    blocked = [(path.name, event) for path, event in refused.items()]
    if state.settings.database_url:
        await _share(state, stored, paths)
    source_of = source_namer(stored)
    if stream:
        return StreamingResponse(
            _ingest_events(store, stored, paths, source_of, collection, blocked),
            media_type="text/event-stream",
            headers=HEADERS,
        )
    report = await asyncio.to_thread(_ingest, store, stored, paths, None, source_of)
    return _report(collection, report, blocked)


@router.get(
    "/{collection}/documents/{name}",
    summary="An uploaded document's bytes (from the database with database_url, else this server's copy)",
    response_class=Response,
)
async def download(collection: str, name: str, state: State, request: Request) -> Response:
    from kernel_app.interfaces.server.uploads import safe_name, upload_path
    from memories.uploads import upload_folder

    stored = _scope(state, request).stored(collection)
    content: bytes | None = None
    store = state.memory()
    # A dropped collection's documents are gone, whatever copy another server's folder still has.
    if stored not in {c.name for c in await asyncio.to_thread(store.collections)}:
        raise ApiError(404, f"no memory collection {collection!r}", "collection_not_found")
    if state.settings.database_url:
        uploads = await asyncio.to_thread(_uploads, state)
        content = await asyncio.to_thread(uploads.content, upload_folder(stored), safe_name(Path(name).name))
    if content is None:  # without database_url, or uploaded before the database kept the bytes
        path = upload_path(store, stored, name)
        content = await asyncio.to_thread(path.read_bytes) if path.is_file() else None
    if content is None:
        message = f"{name}: no document of that name was uploaded to {collection!r} (on this server)"
        raise ApiError(404, message, "document_not_found")
    filename = safe_name(Path(name).name)
    return Response(
        content,
        media_type=_MEDIA_TYPES.get(Path(filename).suffix.lower(), "application/octet-stream"),
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


_MEDIA_TYPES = {".md": "text/markdown; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".pdf": "application/pdf"}


def _scope(state: ServerState, request: Request) -> CollectionScope:
    return collection_scope(request, state.settings.shared_collections)


async def _scoped(scope: CollectionScope, store: Any, call: Callable[..., Any], *arguments: Any) -> Any:
    """``call(*arguments)`` off the loop; a missing collection's error names the caller's collections only."""
    try:
        return await asyncio.to_thread(call, *arguments)
    except CollectionNotFoundError as error:
        raise scope.not_found(error, [c.name for c in await asyncio.to_thread(store.collections)]) from None


def _uploads(state: ServerState) -> Any:
    """The REST uploads' bytes on PostgreSQL, opened on first use (closed when the server stops)."""
    if state.uploads is None:
        from kernel_app.interfaces.server.api.pg_uploads import PgUploads

        assert state.settings.database_url
        state.uploads = PgUploads(state.settings.database_url)
    return state.uploads


async def _share(state: ServerState, collection: str, paths: list[Path]) -> None:
    """Keep each upload's bytes in the database, for every server to serve."""
    from memories.uploads import upload_folder

    uploads = await asyncio.to_thread(_uploads, state)
    for path in paths:
        data = await asyncio.to_thread(path.read_bytes)
        await asyncio.to_thread(uploads.keep, upload_folder(collection), path.name, data)


async def _ingest_events(
    store: Any,
    collection: str,
    paths: list[Path],
    source_of: Callable[[Path], str] | None,
    visible: str,
    blocked: list[tuple[str, Any]],
) -> AsyncIterator[str]:
    """Ingest into ``collection`` (the stored name), with progress events naming it ``visible``."""
    for _, event in blocked:  # refused before anything was ingested
        yield frame(event.to_dict())
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def progress(path: Path, done: int, total: int) -> None:
        event = {"type": "ingest_progress", "file": path.name, "done": done, "total": total}
        loop.call_soon_threadsafe(events.put_nowait, event)

    job = asyncio.ensure_future(asyncio.to_thread(_ingest, store, collection, paths, progress, source_of))
    job.add_done_callback(lambda _: events.put_nowait(None))
    while (event := await events.get()) is not None:
        yield frame(event)
    try:
        report = await job
    except Exception as error:
        yield frame({"type": "error", "message": str(error).splitlines()[0] if str(error) else type(error).__name__})
        return
    yield frame({"type": "done", **_report(visible, report, blocked)})


def _ingest(
    store: Any, collection: str, paths: list[Path], progress: Any, source_of: Callable[[Path], str] | None
) -> Any:
    from memories.ingest import ingest

    return ingest(store, collection, paths, progress=progress, source_of=source_of)


def _report(collection: str, report: Any, blocked: list[tuple[str, Any]]) -> dict[str, Any]:
    """The upload's outcome; a document the content screen refused is under ``failed`` (its reason says
    so) and its event under ``blocked``."""
    refused = [{"file": name, "reason": f"refused by content safety ({e.category}): {e.reason}"} for name, e in blocked]
    return {
        "collection": collection,
        "added": report.added,
        "chunks": report.chunks,
        "skipped_unchanged": report.skipped_unchanged,
        "failed": [{"file": Path(path).name, "reason": reason} for path, reason in report.failed] + refused,
        "blocked": [e.to_dict() for _, e in blocked],
    }
