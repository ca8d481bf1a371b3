"""The content screen where the kernel's code meets it: which screen a kernel has, screening a text, and
dropping flagged records before they reach a prompt (each one reported, so that the conversation
engine can show a ``ContentBlocked`` event)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kernel_app.providers.content_safety import CLEAN, ContentBlockedError, Screen, Stage, Verdict, report_blocked

if TYPE_CHECKING:
    from semantic_kernel import Kernel

    from kernel_app.kernel.app_kernel import AppKernel
    from memories.records import SearchHit

Hit = TypeVar("Hit", bound="SearchHit")


def screen_of(kernel: Kernel | None) -> Screen | None:
    """The kernel's screen (build_kernel sets it from ``content_safety``); None for a kernel without one."""
    return getattr(kernel, "_content_screen", None) if kernel is not None else None


def use_screen(kernel: AppKernel, screen: Screen | None) -> None:
    """Give the kernel its screen (what :func:`screen_of` finds)."""
    kernel._content_screen = screen


async def verdict(screen: Screen | None, text: str, stage: Stage) -> Verdict:
    return CLEAN if screen is None or not text else await screen.screen(text, stage)


async def require_clean(screen: Screen | None, text: str, stage: Stage) -> None:
    """Raise :class:`ContentBlockedError` when ``text`` is flagged (a direct run has no event to carry it)."""
    found = await verdict(screen, text, stage)
    if found.flagged:
        raise ContentBlockedError(stage, found)


async def require_clean_values(screen: Screen | None, values: Mapping[str, Any], stage: Stage) -> None:
    """Every text value of ``values`` (a function's arguments) is screened."""
    for value in values.values():
        if isinstance(value, str):
            await require_clean(screen, value, stage)


async def clean_hits(screen: Screen | None, hits: Sequence[Hit]) -> list[Hit]:
    """The hits whose records pass the screen; each flagged one is reported (stage ``retrieved``)."""
    if screen is None or not hits:
        return list(hits)
    verdicts = await screen.screen_many([hit.record.text for hit in hits], "retrieved")
    kept: list[Hit] = []
    for hit, found in zip(hits, verdicts, strict=True):
        if found.flagged:
            report_blocked("retrieved", Verdict(True, found.category, f"record {hit.record.id}: {found.reason}"))
        else:
            kept.append(hit)
    return kept


async def flagged_document(screen: Screen | None, path: Path, *, chunk_size: int = 800, overlap: int = 100) -> Verdict:
    """The verdict on a document before it is ingested: flagged when one of its chunks is (cut as ingest
    cuts them, so "chunk N" names the record that would hold it; the reason starts with the file's name).

    A document is refused whole: a user learns at once which part and why, and can fix it, rather than
    get answers from a document with silent holes in it. One that cannot be read passes: ingest reports it
    as it does any unreadable file."""
    from memories.errors import DocumentReadError
    from memories.ingest import MARKDOWN_SUFFIXES, chunk_markdown, read_document

    if screen is None:
        return CLEAN
    try:
        text = await asyncio.to_thread(read_document, path)
    except DocumentReadError:
        return CLEAN
    chunks = chunk_markdown(text, chunk_size, overlap, headings=path.suffix.lower() in MARKDOWN_SUFFIXES)
    verdicts = await screen.screen_many([chunk.text for chunk in chunks], "document")
    for number, found in enumerate(verdicts):
        if found.flagged:
            return Verdict(True, found.category, f"{path.name}, chunk {number}: {found.reason}")
    return CLEAN
