"""Ingestion: documents (.txt, .md, .pdf) → chunks → records, skipping files that did not change.

Each chunk becomes a record with id ``<source>#<n>`` and metadata ``source`` (the resolved path, or what
the caller's ``source_of`` names it: a REST upload on a shared database is ``uploads/COLLECTION/NAME``),
``chunk`` (n), ``heading`` (the markdown heading path, "A > B"), ``offset`` (character offset in
the document) and ``sha256`` (of the file's bytes). A file whose stored chunks all carry its current
hash is skipped; a changed file's chunks are replaced in one transaction, so a crash mid-ingest
leaves each file either fully old or fully new.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memories.errors import DocumentReadError, MemoryUsageError

if TYPE_CHECKING:
    from memories.records import Metadata
    from memories.store import MemoryStore

MARKDOWN_SUFFIXES = {".md", ".markdown"}
SUPPORTED_SUFFIXES = {".txt", ".pdf", *MARKDOWN_SUFFIXES}
MAX_ID_LENGTH = 480

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str  # the heading path above the chunk, e.g. "Menu > Pizzas" ("" before any heading)
    position: int  # character offset of the chunk's first character in the document


@dataclass
class IngestReport:
    added: int = 0  # files stored (new or changed)
    chunks: int = 0  # records written for them
    skipped_unchanged: int = 0  # files whose stored chunks already match their content hash
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (file, why), the rest went in


ProgressCallback = Callable[[Path, int, int], None]  # (file, files done, files in all)


# --- reading ---------------------------------------------------------------------------------


def read_document(path: Path | str) -> str:
    """The text of a .txt, .md or .pdf file; :class:`DocumentReadError` says why not."""
    path = Path(path)
    return decode_document(path, _read_bytes(path))


def _read_bytes(path: Path) -> bytes:
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise DocumentReadError(path, f"unsupported file type '{path.suffix or '(none)'}': use {kinds}")
    try:
        return path.read_bytes()
    except OSError as error:
        raise DocumentReadError(path, error.strerror or str(error)) from error


def decode_document(path: Path, data: bytes) -> str:
    if path.suffix.lower() == ".pdf":
        return _pdf_text(path, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentReadError(path, f"not UTF-8 text (byte {error.start})") from error
    if "\x00" in text:
        raise DocumentReadError(path, "looks like a binary file, not text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pdf_text(path: Path, data: bytes) -> str:
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentReadError(path, "the PDF is password-protected")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except DocumentReadError:
        raise
    except Exception as error:  # pypdf raises many types for damaged files
        raise DocumentReadError(path, f"unreadable PDF ({type(error).__name__}: {error})") from error
    text = "\n\n".join(page for page in pages if page)
    if not text.strip():
        raise DocumentReadError(path, "the PDF has no extractable text (a scan? run OCR first)")
    return text


def iter_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Files to ingest: files as given, directories recursively (supported types, no hidden ones)."""
    seen: set[Path] = set()
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = (
                f
                for f in sorted(path.rglob("*"))
                if f.is_file()
                and f.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
        else:
            found = iter([path])  # missing or unsupported files are reported by ingest()
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                yield file


# --- chunking --------------------------------------------------------------------------------


def chunk_markdown(text: str, chunk_size: int = 800, overlap: int = 100, *, headings: bool = True) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``chunk_size`` characters.

    Headings are hard boundaries (a chunk never spans two sections); within a section whole
    paragraphs are packed together, a paragraph too long on its own is cut at sentence ends, then
    at spaces. Each chunk after the first in a section starts with about ``overlap`` characters
    (whole words) of the previous one. ``headings=False`` treats ``#`` lines as text (plain .txt).
    """
    if chunk_size < 20:
        raise MemoryUsageError("chunk_size must be at least 20 characters")
    if not 0 <= overlap < chunk_size // 2:
        raise MemoryUsageError("overlap must be at least 0 and less than half of chunk_size")
    chunks: list[Chunk] = []
    for heading, heading_span, body in _sections(text, headings):
        blocks = ([heading_span] if heading_span else []) + body
        if not any(text[a:b].strip() for a, b in body):
            continue  # a heading with nothing under it: its title lives on in the sub-headings' path
        pieces = [piece for block in blocks for piece in _split_long(text, block, chunk_size - overlap)]
        chunks.extend(_pack(text, pieces, heading, chunk_size, overlap))
    return chunks


def _lines(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for line in text.split("\n"):
        spans.append((start, start + len(line)))
        start += len(line) + 1
    return spans


def _sections(text: str, headings: bool) -> list[tuple[str, tuple[int, int] | None, list[tuple[int, int]]]]:
    """(heading path, heading line span, paragraph spans) per section, in order."""
    sections: list[tuple[str, tuple[int, int] | None, list[tuple[int, int]]]] = [("", None, [])]
    path: list[tuple[int, str]] = []
    paragraph: list[tuple[int, int]] = []
    fence: str | None = None

    def close_paragraph() -> None:
        if paragraph:
            sections[-1][2].append((paragraph[0][0], paragraph[-1][1]))
            paragraph.clear()

    def open_section(level: int, title: str, span: tuple[int, int]) -> None:
        close_paragraph()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title.strip()))
        sections.append((" > ".join(t for _, t in path if t), span, []))

    for start, end in _lines(text):
        line = text[start:end]
        marker = _FENCE.match(line)
        if fence is not None:  # inside a code block: blank lines and '#' lines are code
            paragraph.append((start, end))
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = None
            continue
        if marker:
            fence = marker.group(1)
            paragraph.append((start, end))
            continue
        atx = _ATX.match(line) if headings else None
        if atx:
            open_section(len(atx.group(1)), atx.group(2) or "", (start, end))
        elif headings and len(paragraph) == 1 and _SETEXT.match(line):
            title_start, title_end = paragraph.pop()  # the line above is the title
            open_section(1 if line.strip()[0] == "=" else 2, text[title_start:title_end], (title_start, end))
        elif not line.strip():
            close_paragraph()
        else:
            paragraph.append((start, end))
    close_paragraph()
    return sections


def _split_long(text: str, span: tuple[int, int], limit: int) -> Iterator[tuple[int, int]]:
    """Cut a span longer than ``limit`` at sentence ends, else at whitespace, else hard."""
    start, end = span
    while end - start > limit:
        window = text[start : start + limit + 1]
        cut = max((m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= limit), default=0)
        if cut < limit // 3:  # no sentence end far enough in: cut at the last space
            cut = max((m.end() for m in _SPACE.finditer(window) if m.end() <= limit), default=0)
        if cut < limit // 3:
            cut = limit
        piece_end = start + cut
        yield start, piece_end
        start = piece_end
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        yield start, end


def _pack(text: str, pieces: list[tuple[int, int]], heading: str, size: int, overlap: int) -> Iterator[Chunk]:
    chunk_start: int | None = None
    chunk_end = 0
    for start, end in pieces:
        if chunk_start is not None and end - chunk_start > size:
            yield _chunk(text, chunk_start, chunk_end, heading)
            chunk_start = _overlap_start(text, chunk_start, chunk_end, overlap)
            if chunk_start is not None and end - chunk_start > size:  # a wide gap: no room for overlap
                chunk_start = None
        if chunk_start is None:
            chunk_start = start
        chunk_end = end
    if chunk_start is not None:
        yield _chunk(text, chunk_start, chunk_end, heading)


def _overlap_start(text: str, chunk_start: int, chunk_end: int, overlap: int) -> int | None:
    """Where the next chunk starts: ``overlap`` characters back from the end, at a word start."""
    if overlap == 0:
        return None
    start = max(chunk_start, chunk_end - overlap)
    while start < chunk_end and not (start == chunk_start or text[start - 1].isspace()):
        start += 1  # do not begin inside a word
    while start < chunk_end and text[start].isspace():
        start += 1
    return start if start < chunk_end else None


def _chunk(text: str, start: int, end: int, heading: str) -> Chunk:
    raw = text[start:end]
    return Chunk(text=raw.strip(), heading=heading, position=start + len(raw) - len(raw.lstrip()))


# --- ingesting -------------------------------------------------------------------------------


def ingest(
    store: MemoryStore,
    collection: str,
    paths: Iterable[Path | str],
    *,
    chunk_size: int = 800,
    overlap: int = 100,
    progress: ProgressCallback | None = None,
    source_of: Callable[[Path], str] | None = None,
) -> IngestReport:
    """Chunk and store every file under ``paths``; one unreadable file is reported, the rest go in.

    ``source_of`` names a file's chunks (default: its resolved path); a file ingested again under the
    same name replaces them, whichever folder or server it was read from."""
    report = IngestReport()
    files = list(iter_files(paths))
    stored = _stored_by_source(store.metadata(collection))
    for done, path in enumerate(files, 1):
        try:
            source = source_of(path) if source_of is not None else str(path.resolve())
            _ingest_file(store, collection, path, source, stored, report, chunk_size, overlap)
        except DocumentReadError as error:
            report.failed.append((path, error.reason))
        if progress is not None:
            progress(path, done, len(files))
    return report


def _ingest_file(
    store: MemoryStore,
    collection: str,
    path: Path,
    source: str,
    stored: dict[str, dict[str, Metadata]],
    report: IngestReport,
    chunk_size: int,
    overlap: int,
) -> None:
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    old = stored.get(source, {})
    if old and all(meta.get("sha256") == digest for meta in old.values()):
        report.skipped_unchanged += 1
        return
    markdown = path.suffix.lower() in MARKDOWN_SUFFIXES
    chunks = [c for c in chunk_markdown(decode_document(path, data), chunk_size, overlap, headings=markdown) if c.text]
    if not chunks:
        raise DocumentReadError(path, "no text to store (the file is empty)")
    prefix = source if len(source) <= MAX_ID_LENGTH else hashlib.sha1(source.encode()).hexdigest()
    items: list[dict[str, Any]] = [
        {
            "id": f"{prefix}#{number}",
            "text": chunk.text,
            "description": chunk.heading,
            "metadata": {
                "source": source,
                "chunk": number,
                "heading": chunk.heading,
                "offset": chunk.position,
                "sha256": digest,
            },
        }
        for number, chunk in enumerate(chunks)
    ]
    store.save_many(collection, items, replacing=old.keys())
    report.added += 1
    report.chunks += len(items)


def _stored_by_source(metadata: dict[str, Metadata]) -> dict[str, dict[str, Metadata]]:
    by_source: dict[str, dict[str, Metadata]] = {}
    for record_id, meta in metadata.items():
        source = meta.get("source")
        if isinstance(source, str):
            by_source.setdefault(source, {})[record_id] = meta
    return by_source
