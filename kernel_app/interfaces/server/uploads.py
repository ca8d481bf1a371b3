"""Uploaded documents kept under the memory folder before they are ingested, for the REST API's
``/v1/memory/{collection}/documents`` and chat-copilot's ``/chats/{id}/documents`` alike.

Each file goes to ``uploads/COLLECTION/NAME`` (both names made safe) and its chunks are named so
(``memories.uploads``: the same on every server, whichever backend), so ingesting it again under the
same name, through any server, replaces its chunks and an unchanged one is skipped. Disk writes run on
a thread. With ``database_url``, chat-copilot (its records) and the REST API (``api/pg_uploads.py``)
also keep each document's bytes in PostgreSQL, so any server serves them; this folder is then the
receiving server's working copy, what ingest read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memories.uploads import UPLOADS, safe_name, upload_folder, upload_source

__all__ = ["keep_uploads", "safe_name", "source_namer", "upload_path", "upload_source"]

if TYPE_CHECKING:
    from fastapi import UploadFile


def upload_path(store: Any, collection: str, name: str) -> Path:
    """Where an upload named ``name`` into ``collection`` is kept under ``store``'s folder."""
    return Path(store.path) / UPLOADS / upload_folder(collection) / safe_name(Path(name).name)


def source_namer(collection: str) -> Callable[[Path], str]:
    """``ingest``'s ``source_of`` for uploads into ``collection``: ``uploads/COLLECTION/NAME``."""
    return lambda path: upload_source(collection, path.name)


async def keep_uploads(store: Any, collection: str, files: list[UploadFile]) -> list[tuple[Path, int]]:
    """Write each upload under ``store``'s folder: (where, how many bytes) per file, in order.

    A file that is not .txt, .md or .pdf is a 400 naming it (the files before it are kept)."""
    from kernel_app.interfaces.server.errors import ApiError
    from memories.ingest import SUPPORTED_SUFFIXES

    kept: list[tuple[Path, int]] = []
    for upload in files:
        name = Path(upload.filename or "").name
        if not name or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
            raise ApiError(400, f"{name or 'a file'}: upload .txt, .md or .pdf files", "unsupported_document")
        data = await upload.read()
        target = upload_path(store, collection, name)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(target.write_bytes, data)
        kept.append((target, len(data)))
    return kept


async def refused_uploads(screen: Any, paths: list[Path]) -> dict[Path, Any]:
    """The uploads the content screen refuses, each with its ``ContentBlocked`` event (stage ``document``;
    :func:`kernel_app.kernel.screening.flagged_document` says why a document is refused whole); their
    copies are deleted, so nothing of them is ingested or kept."""
    from kernel_app.conversation.events import ContentBlocked
    from kernel_app.kernel.screening import flagged_document

    refused: dict[Path, Any] = {}
    for path in paths:
        found = await flagged_document(screen, path)
        if found.flagged:
            refused[path] = ContentBlocked("document", found.category, found.reason)
            await asyncio.to_thread(path.unlink, True)
    return refused
