"""A markdown text split into its tables and the text around them, and written back with new cells.

A function that rewrites a text's tables (BusinessThinking.ChangeAudience, ShiftDomain) reads each
table's cells here, has them rewritten, and renders the text again: headings, blank lines, a table's header
and separator rows stay exactly as written, and each body row gets its new cells. Text outside tables comes
back as :class:`Prose` blocks (paragraphs and lists between tables), to be rewritten or kept by the caller.
A ``|`` line without a separator row under it is text, not a table: a model's one-line ``| a swot |`` is
no table to rewrite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

# A separator row: "| --- | :---: |", "---|---", with or without the outer pipes.
_SEPARATOR = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$")
_HEADING = re.compile(r"^#{1,6}\s")
_RULE = re.compile(r"^(?:-{3,}|\*{3,}|_{3,})$")
# A pipe a cell holds, written "\|", is not a column border.
_BORDER = re.compile(r"(?<!\\)\|")


@dataclass
class Table:
    """One markdown table: its header and separator lines as written, and its body rows' cells."""

    header_line: str
    separator_line: str
    rows: list[list[str]]
    heading: str = ""  # the nearest heading above it, without the #s: what the table is about
    # The last line of text above it since the table before, as written ("### Strengths", "**Strengths**"):
    # ShiftDomain names the table by it.
    line_above: str = ""

    @property
    def columns(self) -> list[str]:
        return split_row(self.header_line)


@dataclass
class Kept:
    """Lines written back as they are: headings, blank lines, rules."""

    text: str


@dataclass
class Prose:
    """Consecutive lines of text outside a table (a paragraph, a list)."""

    text: str


Segment = Table | Kept | Prose


@dataclass
class Document:
    segments: list[Segment] = field(default_factory=list)

    @property
    def tables(self) -> list[Table]:
        return [s for s in self.segments if isinstance(s, Table)]


def split_row(line: str) -> list[str]:
    """A table line's cells, stripped; the outer pipes are optional, as in GitHub's markdown."""
    text = line.strip()
    text = text[1:] if text.startswith("|") else text
    text = text[:-1] if text.endswith("|") and not text.endswith("\\|") else text
    return [cell.strip() for cell in _BORDER.split(text)]


def _is_row(line: str) -> bool:
    return line.strip().startswith("|")


def parse(text: str) -> Document:
    """``text`` as segments, in order; rendering them gives ``text`` back (trailing spaces and line breaks aside)."""
    lines = text.splitlines()
    document = Document()
    heading = ""
    line_above = ""
    prose: list[str] = []

    def flush_prose() -> None:
        if prose:
            document.segments.append(Prose("\n".join(prose)))
            prose.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if _is_row(line) and _SEPARATOR.match(following) and "-" in following:
            flush_prose()
            end = index + 2
            while end < len(lines) and _is_row(lines[end]):
                end += 1
            rows = [split_row(row) for row in lines[index + 2 : end]]
            document.segments.append(Table(line.rstrip(), lines[index + 1].rstrip(), rows, heading, line_above))
            line_above = ""
            index = end
            continue
        if stripped:
            line_above = stripped
        if not stripped or _HEADING.match(stripped) or _RULE.match(stripped):
            flush_prose()
            if _HEADING.match(stripped):
                heading = stripped.lstrip("#").strip()
            document.segments.append(Kept(line.rstrip()))
        else:
            prose.append(line.rstrip())
        index += 1
    flush_prose()
    return document


def render_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell_text(cell) for cell in cells) + " |"


def render_segment(segment: Segment) -> str:
    """One segment's lines, without a line break after the last."""
    if isinstance(segment, Table):
        return "\n".join([segment.header_line, segment.separator_line, *map(render_row, segment.rows)])
    return segment.text


def render(document: Document) -> str:
    return "\n".join(render_segment(segment) for segment in document.segments)


def cell_text(text: str) -> str:
    """A value as one table cell: one line, its pipes escaped, no zero-width characters (invisible in a
    table, but not in its text: the 1.5B once ended a cell with a U+200C)."""
    text = re.sub("[\u200b-\u200d\u2060\ufeff]", "", text)
    return " ".join(_BORDER.sub(r"\\|", text).split())


def fitted_rows(table: Table) -> list[tuple[str, ...]]:
    """The body rows as many cells as the table has columns: a short row padded, the extra cells of a long
    one joined into its last."""
    width = len(table.columns)
    return [
        tuple(row + [""] * (width - len(row)))
        if len(row) < width
        else (*row[: width - 1], " / ".join(c for c in row[width - 1 :] if c))
        for row in table.rows
    ]


def with_rows(document: Document, rows: Sequence[Sequence[Sequence[str]]]) -> Document:
    """The same document with each table's body rows replaced by ``rows[i]`` (one list per table, in order)."""
    if len(rows) != len(document.tables):
        raise ValueError(f"{len(rows)} row lists for {len(document.tables)} tables")
    new_rows = iter(rows)
    return Document(
        [
            replace(segment, rows=[list(row) for row in next(new_rows)]) if isinstance(segment, Table) else segment
            for segment in document.segments
        ]
    )


def render_plain(table: Table) -> str:
    """The table in one plain layout (``| a | b |``, ``| --- | --- |``), its rows fitted to its columns:
    how a prompt shows a table to the model."""
    lines = [render_row(table.columns), render_row(["---"] * len(table.columns))]
    return "\n".join(lines + [render_row(list(row)) for row in fitted_rows(table)])


def parts(document: Document) -> list[str]:
    """The rendered text in pieces that each end with a table (the last piece: what follows the last table),
    so that each table can be shown with the text above it as soon as it is ready. Joined, they are
    :func:`render`: each piece after the first starts with the line break before it."""
    pieces: list[str] = []
    pending: list[str] = []
    for segment in document.segments:
        pending.append(render_segment(segment))
        if isinstance(segment, Table):
            pieces.append("\n".join(pending))
            pending = []
    if pending:
        pieces.append("\n".join(pending))
    return [piece if index == 0 else "\n" + piece for index, piece in enumerate(pieces)]


def rest_from_table(document: Document, index: int) -> str:
    """The rendered text from the end of the table before the ``index``-th one (so with its heading) on."""
    tables = [position for position, segment in enumerate(document.segments) if isinstance(segment, Table)]
    if index >= len(tables):
        return ""
    start = tables[index - 1] + 1 if index > 0 else 0
    return render(Document(document.segments[start:]))
