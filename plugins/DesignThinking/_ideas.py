"""DesignThinking.Ideate's ideas: the problems read from the input, the JSON the model answers with, the
ideas kept (no repeats, by the rule the shipped eval checks) and the table they are rendered as.

The model is asked for ideas one problem at a time (see ideate_plugin.py); this module holds everything
about those answers that needs no model, so it is tested on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

TARGET = 20  # ideas in the table: the function's description promises 10 of each fruit
LOWER, HIGHER = "Lower-hanging fruit", "Higher-hanging fruit"
FRUITS = {LOWER: TARGET // 2, HIGHER: TARGET - TARGET // 2}
# The JSON key each fruit's ideas are asked under, in the order the schema (so the grammar) writes them.
KEYS = {LOWER: "lower_hanging_fruit", HIGHER: "higher_hanging_fruit"}
MAX_PROBLEMS = 10  # with more, a problem would get no idea of one fruit: the first ten are used
HEADER = "| # | Idea | Type | Problem it solves | Description |\n| --- | --- | --- | --- | --- |\n"

# Length bounds of the strings, far above what the prompt asks (2-6 words, 12 words): they keep a small
# model from looping inside one string until max_tokens runs out. A string that reaches its bound was cut
# by the grammar mid-sentence, so that idea is dropped (CUT_MARGIN: the grammar closes a string when the
# next token would not fit, up to a token's length early). At 60 and 140 the 1.5B's ideas of 9-10 words
# and descriptions of 20-25 were cut ("Implement a tiered pricing model that includes discounts for low"),
# and the model went on after the cut with a stray number or word.
IDEA_MAX, DESCRIPTION_MAX, LABEL_MAX = 100, 220, 40
CUT_MARGIN = 8
_IDEA = {
    "type": "object",
    "properties": {
        "idea": {"type": "string", "minLength": 3, "maxLength": IDEA_MAX},
        "description": {"type": "string", "minLength": 10, "maxLength": DESCRIPTION_MAX},
    },
    "required": ["idea", "description"],
}


def ideas_schema(lower: int, higher: int, *, label: bool = False) -> dict:
    """The answer for one problem: exactly ``lower`` and ``higher`` ideas, after a short name for the
    problem when ``label`` (the input did not name it)."""
    properties: dict = {"problem": {"type": "string", "minLength": 3, "maxLength": LABEL_MAX}} if label else {}
    for fruit, count in ((LOWER, lower), (HIGHER, higher)):
        if count:
            properties[KEYS[fruit]] = {"type": "array", "items": _IDEA, "minItems": count, "maxItems": count}
    return {"type": "object", "properties": properties, "required": list(properties)}


# region the problems in the input

_TABLE_ROW = re.compile(r"^\s*\|(.+)\|\s*$")
_SEPARATOR = re.compile(r"^[\s|:-]+$")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+(.*\S)")


@dataclass(frozen=True)
class Problem:
    text: str  # what the model is told the problem is
    label: str = ""  # its name in the table's "Problem it solves"; "" when the model is to name it


def problems_in(text: str) -> list[Problem]:
    """The problems to brainstorm for: the rows of a markdown table (the Define output: its cells joined,
    named by its first cell), else the items of a list, else the whole text as one problem."""
    rows = [m.group(1) for line in text.splitlines() if (m := _TABLE_ROW.match(line))]
    body = [row for row in rows[1:] if not _SEPARATOR.match(row)]  # the first row is the header
    found: list[Problem] = []
    for row in body:
        cells = [_cell(cell) for cell in row.split("|") if _cell(cell)]
        if cells:
            found.append(Problem(" - ".join(cells), cells[0]))
    if not found:
        found = [Problem(_cell(m.group(1))) for line in text.splitlines() if (m := _BULLET.match(line))]
    return found[:MAX_PROBLEMS] or [Problem(_cell(text))]


def quotas(problems: int) -> list[dict[str, int]]:
    """How many ideas of each fruit each problem gets: ten of each in all, spread evenly, the lower-hanging
    remainder to the first problems and the higher-hanging one to the last, so every problem gets as many."""
    lower, higher = FRUITS[LOWER], FRUITS[HIGHER]
    shares = []
    for index in range(problems):
        low = lower // problems + (1 if index < lower % problems else 0)
        high = higher // problems + (1 if problems - 1 - index < higher % problems else 0)
        shares.append({LOWER: low, HIGHER: high})
    return shares


# endregion

# region the model's answer

_OBJECT = re.compile(r"\{[^{}]*\}")
_LABEL = re.compile(r'"problem"\s*:\s*"((?:[^"\\]|\\.)*)"')
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff]")
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Idea:
    idea: str
    fruit: str
    problem: int  # index into the problems
    description: str


@dataclass
class Answer:
    """What one answer held: the problem's label (or "") and its complete ideas, in order."""

    label: str = ""
    ideas: list[tuple[str, str, str]] = field(default_factory=list)  # (fruit, idea, description)


def read_answer(text: str) -> Answer:
    """The label and every complete idea object of a JSON answer, even one cut off or malformed around
    them; an idea's fruit is the array it sits in (the last fruit key before it). Ideas cut at a length
    bound, and cells with no words, are left out."""
    answer = Answer()
    label = _LABEL.search(text)
    if label:
        answer.label = _cell(_decoded(label.group(1)))
    starts = sorted((text.find(f'"{key}"'), fruit) for fruit, key in KEYS.items() if f'"{key}"' in text)
    for match in _OBJECT.finditer(text):
        fruit = next((f for start, f in reversed(starts) if start < match.start()), None)
        if fruit is None:
            continue
        try:
            item = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        idea, description = item.get("idea"), item.get("description")
        if not isinstance(idea, str) or not isinstance(description, str):
            continue
        if len(idea) >= IDEA_MAX - CUT_MARGIN or len(description) >= DESCRIPTION_MAX - CUT_MARGIN:
            continue  # cut by the grammar mid-sentence (or a loop inside the string)
        idea, description = _cell(idea).rstrip("."), _sentence(_cell(description))  # an idea is a label
        if _WORD.search(idea) and _WORD.search(description):
            answer.ideas.append((fruit, idea, description))
    return answer


def _decoded(raw: str) -> str:
    try:
        return json.loads(f'"{raw}"')
    except json.JSONDecodeError:
        return raw


def _sentence(text: str) -> str:
    """A description as the sentence the prompt asks for: the 1.5B often leaves out the full stop."""
    return text + "." if text and not _END_MARK.search(text) else text


_END_MARK = re.compile(r"[.!?…:;)\]\"'’”]$")


def _cell(text: str) -> str:
    """Text as one table cell: one line, no pipe to split it, no invisible characters."""
    return " ".join(_INVISIBLE.sub("", text).replace("|", "/").split()).strip(" *_")


# endregion

# region the ideas kept


@dataclass
class IdeaTable:
    """The ideas kept so far: never one that repeats another's idea or description (the eval's rule)."""

    problems: list[Problem]
    labels: dict[int, str] = field(default_factory=dict)  # the model's names of problems the input did not name
    ideas: list[Idea] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shares = quotas(len(self.problems))

    def missing(self, problem: int, fruit: str) -> int:
        have = sum(1 for idea in self.ideas if idea.problem == problem and idea.fruit == fruit)
        return max(0, self.shares[problem][fruit] - have)

    @property
    def full(self) -> bool:
        return len(self.ideas) >= TARGET

    def add(self, idea: Idea) -> bool:
        """Keep ``idea`` if its problem still wants one of its fruit and it repeats no kept idea."""
        from kernel_app.kernel.evals.assertions import cells_repeat

        if self.missing(idea.problem, idea.fruit) == 0:
            return False
        for kept in self.ideas:
            if cells_repeat(kept.idea, idea.idea) or cells_repeat(kept.description, idea.description):
                return False
        self.ideas.append(idea)
        return True

    def label(self, problem: int) -> str:
        """The problem's name: the input's, else the model's, else its first words."""
        given = self.problems[problem].label or self.labels.get(problem)
        return given or " ".join(self.problems[problem].text.split()[:5])

    def row(self, number: int) -> str:
        idea = self.ideas[number - 1]
        return f"| {number} | {idea.idea} | {idea.fruit} | {self.label(idea.problem)} | {idea.description} |\n"

    def render(self) -> str:
        return HEADER + "".join(self.row(number) for number in range(1, len(self.ideas) + 1))


# endregion
