"""Turn a model's SWOT answer into four markdown tables, whatever shape the model answered in.

A service with structured output (local, OpenAI, Azure) is asked for the four quadrants as JSON
(:data:`SWOT_SCHEMA`), read by :func:`parse_swot_json` even when cut off mid-answer. Any other service
is asked for tables; small models write the right content under the right headings but as bullets,
numbered lists or half-finished tables, so :func:`parse_swot` reads headings, table rows, bullets and
sentences. Either way the tables are rendered here, so every service gives the same shape, with
repeated points dropped. Nothing is invented: a category the model left empty says so.
"""

from __future__ import annotations

import json
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

# JSON keys, in the order the schema (and so the grammar) makes the model write them.
JSON_KEYS = {category: category.lower() for category in CATEGORIES}
# The most characters of a point and of its reason. The bound keeps a small model from looping inside one
# string until max_tokens runs out (the tiny tier wrote one sentence ~60 times), so it stays; but it is
# far above what the prompt asks for (a reason of at most 15 words, ~100 characters): at 120 the 1.5B's
# longer reasons were cut mid-word. A string that still reaches it is ended by _ended below. A point is asked
# for in 2 to 5 words, but the 1.5B writes up to ~12 (a 76-character point of a volunteering app's SWOT hit
# the old bound of 80 and was shown cut: "...connect with other volunteers and…"), hence 120.
POINT_MAX = 120
WHY_MAX = 200
_POINT = {
    "type": "object",
    "properties": {
        "point": {"type": "string", "minLength": 3, "maxLength": POINT_MAX},
        "why": {"type": "string", "minLength": 3, "maxLength": WHY_MAX},
    },
    "required": ["point", "why"],
}
SWOT_SCHEMA: dict = {
    "type": "object",
    "properties": {key: {"type": "array", "items": _POINT, "minItems": 3, "maxItems": 4} for key in JSON_KEYS.values()},
    "required": list(JSON_KEYS.values()),
}
# One {"point": "...", "why": "..."} object, complete, in a possibly truncated JSON text.
_JSON_STRING = r'"((?:[^"\\]|\\.)*)"'
_JSON_POINT = re.compile(r'\{\s*"point"\s*:\s*' + _JSON_STRING + r'\s*,\s*"why"\s*:\s*' + _JSON_STRING + r"\s*\}")


@dataclass
class SwotDraft:
    items: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})

    @property
    def found_any(self) -> bool:
        return any(self.items.values())


def parse_swot_json(text: str) -> SwotDraft:
    """The quadrants of a JSON answer; complete points are kept even if the text was cut off."""
    draft = SwotDraft()
    starts = sorted((text.find(f'"{key}"'), category) for category, key in JSON_KEYS.items() if f'"{key}"' in text)
    for index, (start, category) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        for match in _JSON_POINT.finditer(text, start, end):
            point, why = _json_string(match.group(1), POINT_MAX), _sentence(_json_string(match.group(2), WHY_MAX))
            if point:
                draft.items[category].append((point, why))
    return deduplicated(draft)


# How far short of its bound a cut string may end: the grammar closes the string when the next token would
# not fit, so a cut lands up to a token's length early. The 0.5B's "…It can also lead to a lack" (199 of
# 200) and "…return on investment. It" (197) were rendered as sentences ("a lack.", "It.") by _sentence.
CUT_MARGIN = 8


def _json_string(raw: str, bound: int) -> str:
    """A point's or reason's text from its JSON; one the length bound cut (a local model's grammar closes
    the string near ``bound`` characters of JSON text, wherever the sentence is) is ended at a boundary.
    A text that ends its sentence near the bound is kept whole by ``_ended`` too."""
    text = json.loads(f'"{raw}"')
    return _ended(text) if len(raw) >= bound - CUT_MARGIN else text.strip()


def _sentence(why: str) -> str:
    """A reason the model ended itself, as the sentence the prompt asks for: with its full stop. The 1.5B
    often leaves it out ("Customers know the owner, leading to loyalty"), so whole sentences read as cut."""
    return why + "." if why and not _END_MARK.search(why) else why


_END_MARK = re.compile(r"[.!?…:;)\]\"'’”]$")
# Where a cut text may end: after a sentence's full stop, or before a clause's comma, semicolon or dash.
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_CLAUSE_BREAK = re.compile(r"\s*(?:[,;:]|\s[-\u2013\u2014])\s")


def _ended(text: str) -> str:
    """``text``, cut at an arbitrary character, ended at its last complete sentence, else before its last
    clause (with a full stop), so that a table shows no half sentence ("…making it more difficult for the").
    A boundary in the first third would lose most of the reason, so then the last whole word is kept with
    an ellipsis: visibly shortened, which an eval's sentences-complete check still reports."""
    cut_after_a_word = text[-1:].isspace()
    text = text.strip()
    least = len(text) // 3
    sentences = [m.end() for m in _SENTENCE_END.finditer(text) if m.end() > least]
    if sentences:
        return text[: sentences[-1]]
    clauses = [m.start() for m in _CLAUSE_BREAK.finditer(text) if m.start() > least]
    if clauses:
        return text[: clauses[-1]].rstrip() + "."
    whole = text if cut_after_a_word or " " not in text else text.rsplit(None, 1)[0]
    return whole.rstrip(",;:-\u2013\u2014 ") + "…"


def count_json_points(text: str) -> dict[str, int]:
    """How many complete points each quadrant has so far in a streaming JSON answer (for progress)."""
    draft = parse_swot_json(text)
    return {category: len(draft.items[category]) for category in CATEGORIES if f'"{JSON_KEYS[category]}"' in text}


def deduplicated(draft: SwotDraft, keep: int = 3) -> SwotDraft:
    """Each point once per table (same words, any case or punctuation), and once across tables while a
    table keeps ``keep`` points: a point a model put in two quadrants is misplaced in one of them, but a
    table left with two rows would be worse than the repeat."""
    seen: set[str] = set()
    result = SwotDraft()
    for category in CATEGORIES:
        unique: dict[str, tuple[str, str]] = {}
        for point, why in draft.items[category]:
            unique.setdefault(_point_key(point), (point, why))
        unique.pop("", None)
        fresh = [item for key, item in unique.items() if key not in seen]
        result.items[category] = fresh if len(fresh) >= min(keep, len(unique)) else list(unique.values())
        seen.update(unique)
    return result


def _point_key(point: str) -> str:
    return " ".join(re.findall(r"\w+", point.lower()))


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
        if item:
            draft.items[current].append(item)
    return deduplicated(draft)


def render_swot(draft: SwotDraft) -> str:
    return SECTION_SEPARATOR.join(render_quadrant(draft, category) for category in CATEGORIES)


SECTION_SEPARATOR = "\n\n"


def render_quadrant(draft: SwotDraft, category: str) -> str:
    """One category's table, as :func:`render_swot` writes it."""
    rows = draft.items[category] or [("(none given)", "the model named no points here")]
    lines = [f"### {category}", "| Point | Why it matters |", "| --- | --- |"]
    lines += [f"| {_cell(point)} | {_cell(why)} |" for point, why in rows]
    return "\n".join(lines)


def finished_quadrants(text: str) -> int:
    """How many quadrants, in table order, a streaming JSON answer has finished: a quadrant is finished
    once a key written after it has begun. Their tables will not change (a table's repeats are judged
    against the tables before it only), so they can be shown while the rest is generated."""
    starts = {category: text.find(f'"{key}"') for category, key in JSON_KEYS.items()}
    latest = max(starts.values())
    count = 0
    for category in CATEGORIES:
        if not 0 <= starts[category] < latest:
            break
        count += 1
    return count


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


# Zero-width characters: invisible in a table but not in its text (the 1.5B once ended a cut cell with a
# U+200C), so a cell is written without them.
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")


def _cell(text: str) -> str:
    return _ZERO_WIDTH.sub("", text).replace("|", "/").replace("\n", " ").strip()
