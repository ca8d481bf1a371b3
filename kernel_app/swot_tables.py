"""Turn a model's SWOT draft into four markdown tables, whatever layout the model chose.

Large models follow "answer as four tables" reliably; the embedded 135M model writes the right
content under the right headings but as bullets, numbered lists or half-finished tables. Rather than
trust the layout, BusinessThinking.SWOT parses the draft (headings, table rows, bullets, sentences)
and renders the tables itself, so every service gives the same shape. Nothing is invented: a
category the model left empty says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CATEGORIES = ("Strengths", "Weaknesses", "Opportunities", "Threats")
_CATEGORY_PATTERNS = {
    "Strengths": re.compile(r"\bstrength", re.I),
    "Weaknesses": re.compile(r"\bweakness", re.I),
    "Opportunities": re.compile(r"\bopportunit", re.I),
    "Threats": re.compile(r"\bthreat", re.I),
}
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_SEPARATOR_ROW = re.compile(r"^\|?\s*:?-{2,}")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")


@dataclass
class SwotDraft:
    items: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})

    @property
    def found_any(self) -> bool:
        return any(self.items.values())


def parse_swot(text: str) -> SwotDraft:
    draft = SwotDraft()
    current: str | None = None
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        heading = _heading_category(line)
        if heading:
            current = heading
            continue
        if current is None:
            continue
        item = _item(line)
        if item and item not in draft.items[current]:
            draft.items[current].append(item)
    return draft


def render_swot(draft: SwotDraft) -> str:
    sections = []
    for category in CATEGORIES:
        rows = draft.items[category] or [("(none given)", "the model named no points here")]
        lines = [f"### {category}", "| Point | Why it matters |", "| --- | --- |"]
        lines += [f"| {_cell(point)} | {_cell(why)} |" for point, why in rows]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def to_swot_tables(text: str) -> str:
    """The draft as four tables; a draft with no SWOT headings at all is returned unchanged."""
    draft = parse_swot(text)
    return render_swot(draft) if draft.found_any else text.strip()


def _heading_category(line: str) -> str | None:
    """A heading names one category and little else: '### Strengths', '**Weaknesses:**', 'Threats'."""
    if line.startswith("|") or (_BULLET.match(line) and len(line) > 40):
        return None
    bare = _EMPHASIS.sub("", line).strip("#:*- \t").strip()
    if len(bare.split()) > 4:
        return None
    matches = [c for c, pattern in _CATEGORY_PATTERNS.items() if pattern.search(bare)]
    return matches[0] if len(matches) == 1 else None


def _item(line: str) -> tuple[str, str] | None:
    if line.startswith("|"):
        if _SEPARATOR_ROW.match(line):
            return None
        cells = [c.strip() for c in line.strip("|").split("|")]
        cells = [_EMPHASIS.sub("", c).strip() for c in cells if c.strip()]
        if not cells or cells[0].lower() in ("point", "points", "strength", "weakness", "opportunity", "threat"):
            return None  # a header row
        return cells[0], " ".join(cells[1:])
    text = _EMPHASIS.sub("", _BULLET.sub("", line)).strip()
    if len(text) < 3:
        return None
    label = re.match(r"^([^:.]{2,60}):\s+(.+)$", text)
    if label:
        return label.group(1).strip(), label.group(2).strip()
    sentence = re.match(r"^(.+?[.!?])\s+(.+)$", text)
    if sentence:
        return sentence.group(1).strip(), sentence.group(2).strip()
    return text, ""


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ").strip()
