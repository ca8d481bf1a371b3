"""A markdown text split into its tables and the text around them, and written back with new cells.

A function that rewrites a text's tables (BusinessThinking.ChangeAudience) reads each table's cells here,
has them rewritten, and renders the text again: headings, blank lines, a table's header and separator
rows stay exactly as written, and each body row gets its new cells. Text outside tables comes back as
:class:`Prose` blocks (paragraphs and lists between tables), to be rewritten or kept by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
            document.segments.append(Table(line.rstrip(), lines[index + 1].rstrip(), rows, heading))
            index = end
            continue
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
