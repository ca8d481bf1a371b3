"""A markdown text read as its tables and the text around them, so that the rows can be replaced and the
rest (headings, column names, any line that is not a table) written back as it was.

A table is a header row of ``|`` cells, a separator row (``| --- | --- |``) and the rows after it while
lines start with ``|``. A ``|`` line without a separator under it is text, not a table: a model's
one-line ``| a swot |`` is no table to rewrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

_SEPARATOR_ROW = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$")


@dataclass(frozen=True)
class Table:
    """One markdown table: its column names and rows (each as many cells as columns)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    heading: str = ""  # the last line of text above it ("### Strengths"), to name it in a prompt


@dataclass
class TableDocument:
    """The text as blocks, in order: a ``str`` for each run of lines that is not a table, or a :class:`Table`."""

    blocks: list[str | Table] = field(default_factory=list)

    @property
    def tables(self) -> list[Table]:
        return [block for block in self.blocks if isinstance(block, Table)]

    def with_rows(self, rows: list[list[tuple[str, ...]]]) -> TableDocument:
        """The same document with each table's rows replaced by ``rows[i]`` (one list per table, in order)."""
        if len(rows) != len(self.tables):
            raise ValueError(f"{len(rows)} row lists for {len(self.tables)} tables")
        new_rows = iter(rows)
        return TableDocument(
            [replace(block, rows=tuple(next(new_rows))) if isinstance(block, Table) else block for block in self.blocks]
        )

    def render(self) -> str:
        return "\n".join(render_table(block) if isinstance(block, Table) else block for block in self.blocks)

    def parts(self) -> list[str]:
        """The rendered text in pieces that each end with a table (the last piece: what follows the last
        table), so that each table can be shown with its heading as soon as it is ready. Joined, they are
        :meth:`render`."""
        pieces: list[str] = []
        pending: list[str] = []
        for block in self.blocks:
            pending.append(render_table(block) if isinstance(block, Table) else block)
            if isinstance(block, Table):
                pieces.append("\n".join(pending))
                pending = []
        if pending:
            pieces.append("\n".join(pending))
        # Each piece after the first starts a new line: the join's "\n" goes to the front of the next piece.
        return [piece if index == 0 else "\n" + piece for index, piece in enumerate(pieces)]

    def rest_from_table(self, index: int) -> str:
        """The rendered text from the ``index``-th table's heading (the text block just before it) on."""
        seen = -1
        for position, block in enumerate(self.blocks):
            if isinstance(block, Table):
                seen += 1
                if seen == index:
                    start = position - 1 if position > 0 and isinstance(self.blocks[position - 1], str) else position
                    return TableDocument(self.blocks[start:]).render()
        return ""


def parse_tables(text: str) -> TableDocument:
    """``text`` as a :class:`TableDocument`; a text without tables is one text block."""
    lines = text.strip().splitlines()
    blocks: list[str | Table] = []
    text_lines: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        below = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if line.startswith("|") and _SEPARATOR_ROW.match(below):
            columns = tuple(_cells(line))
            index += 2
            rows: list[tuple[str, ...]] = []
            while index < len(lines) and lines[index].strip().startswith("|"):
                rows.append(_fitted(_cells(lines[index].strip()), len(columns)))
                index += 1
            if text_lines:
                blocks.append("\n".join(text_lines))
            blocks.append(Table(columns, tuple(rows), heading=_last_text_line(text_lines)))
            text_lines = []
            continue
        text_lines.append(lines[index].rstrip())
        index += 1
    if text_lines:
        blocks.append("\n".join(text_lines))
    return TableDocument(blocks)


def render_table(table: Table) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    lines += ["| " + " | ".join(cell_text(cell) for cell in row) + " |" for row in table.rows]
    return "\n".join(lines)


# Zero-width characters are invisible in a table but not in its text (see _swot_tables._cell).
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")


def cell_text(text: str) -> str:
    """A value as one table cell: on one line, without a ``|`` that would split it."""
    return _ZERO_WIDTH.sub("", text).replace("|", "/").replace("\n", " ").strip()


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [cell.strip() for cell in inner.split("|")]


def _fitted(cells: list[str], width: int) -> tuple[str, ...]:
    """A row as ``width`` cells: a short row padded, the extra cells of a long one joined into its last."""
    if len(cells) < width:
        return tuple(cells + [""] * (width - len(cells)))
    return (*cells[: width - 1], " / ".join(c for c in cells[width - 1 :] if c))


def _last_text_line(lines: list[str]) -> str:
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
