"""Deterministic assertions, registered by type name (promptfoo's vocabulary).

Each assertion is a function ``(output, params, expected) -> AssertionResult``; :data:`ASSERTIONS` maps a
type name to it and to the parameters it accepts, so the eval-file loader checks parameters strictly and
later types (judges, similarity) only call :func:`register`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kernel_app.base.usage import Usage
from kernel_app.kernel.evals import bounded_regex


@dataclass(frozen=True)
class Output:
    """What one run of a function produced: the text, how long it took and the tokens the kernel reported."""

    text: str
    latency_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    # What a judge model said of this output, by rubric: filled by the runner between produce and check
    # (kernel_app.kernel.evals.judge), so llm-rubric reads it instead of calling a model itself.
    verdicts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AssertionResult:
    type: str
    passed: bool
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "pass": self.passed, "score": round(self.score, 4), "reason": self.reason}


Check = Callable[[Output, Mapping[str, Any], "str | None"], AssertionResult]


@dataclass(frozen=True)
class AssertionType:
    name: str
    check: Check
    # parameter name -> (expected Python type(s), required)
    params: Mapping[str, tuple[tuple[type, ...], bool]]
    # checks the parameters' values when the eval file loads: a problem as "field: what is wrong", or None
    validate: Callable[[Mapping[str, Any]], str | None] | None = None
    # compares the output with a reference text: the assertion's ``value`` or else the case's ``expected``,
    # so the loader refuses a case that has neither
    needs_reference: bool = False


ASSERTIONS: dict[str, AssertionType] = {}

_TEXT = (str,)
_INT = (int,)
_NUMBER = (int, float)


def register(
    name: str,
    params: Mapping[str, tuple[tuple[type, ...], bool]],
    validate: Callable[[Mapping[str, Any]], str | None] | None = None,
    *,
    needs_reference: bool = False,
) -> Callable[[Check], Check]:
    """Register ``check`` as assertion type ``name``; ``params`` are the keys an eval file may give it and
    ``validate`` checks their values when the file loads (a regex that compiles, a schema that is one).
    ``needs_reference``: the check compares with ``value`` or, without one, the case's ``expected``."""

    def add(check: Check) -> Check:
        ASSERTIONS[name] = AssertionType(name, check, params, validate, needs_reference)
        return check

    return add


def _result(name: str, passed: bool, reason: str, score: float | None = None) -> AssertionResult:
    return AssertionResult(name, passed, (1.0 if passed else 0.0) if score is None else score, reason)


def _short(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


# -- string assertions, each also negated as not-<name> ------------------------------------------------------

# name -> (test, what the output does when it hits, what it does not do when it misses)
_STRING_TESTS: dict[str, tuple[Callable[[str, str], bool], str, str]] = {
    "equals": (lambda out, v: out.strip() == v.strip(), "equals", "equal"),
    "contains": (lambda out, v: v in out, "contains", "contain"),
    "icontains": (lambda out, v: v.lower() in out.lower(), "contains (any case)", "contain (any case)"),
    "regex": (lambda out, v: bounded_regex.search(v, out), "matches", "match"),
    "starts-with": (lambda out, v: out.lstrip().startswith(v), "starts with", "start with"),
}


def _string_assertion(name: str, negate: bool) -> Check:
    test, does, does_not = _STRING_TESTS[name]
    full = f"not-{name}" if negate else name

    def check(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
        value = str(params["value"])
        try:
            hit = test(output.text, value)
        except bounded_regex.RegexTimedOut as exc:
            # neither a match nor a miss is known, so regex and not-regex both fail
            return _result(full, False, str(exc))
        passed = hit != negate
        said = f"output {does} {_short(value)}" if hit else f"output does not {does_not} {_short(value)}"
        if not passed and not hit:
            said += f"; it begins {_short(output.text, 40)}"
        return _result(full, passed, said)

    return check


def _valid_regex(params: Mapping[str, Any]) -> str | None:
    missing = bounded_regex.missing_package()
    if missing is not None:
        return missing
    problem = bounded_regex.compile_error(str(params["value"]))
    return None if problem is None else f"value: not a regular expression ({problem})"


for _name in _STRING_TESTS:
    for _negate in (False, True):
        _full = f"not-{_name}" if _negate else _name
        _validate = _valid_regex if _name == "regex" else None
        register(_full, {"value": (_TEXT, True)}, _validate)(_string_assertion(_name, _negate))


# -- sizes ----------------------------------------------------------------------------------------------------


def _bounds(name: str, count: int, unit: str, params: Mapping[str, Any]) -> AssertionResult:
    low, high = params.get("min"), params.get("max")
    if low is not None and count < low:
        return _result(name, False, f"{count} {unit}, fewer than the minimum {low}")
    if high is not None and count > high:
        return _result(name, False, f"{count} {unit}, more than the maximum {high}")
    return _result(name, True, f"{count} {unit}, within bounds")


@register("length", {"min": (_INT, False), "max": (_INT, False)})
def _length(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    return _bounds("length", len(output.text.strip()), "characters", params)


@register("words", {"min": (_INT, False), "max": (_INT, False)})
def _words(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    return _bounds("words", len(output.text.split()), "words", params)


@register("latency", {"max": (_NUMBER, True)})
def _latency(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    limit = float(params["max"])
    passed = output.latency_s <= limit
    return _result("latency", passed, f"took {output.latency_s:.2f} s ({'within' if passed else 'over'} {limit:g} s)")


@register("tokens", {"max": (_INT, True)})
def _tokens(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    used, limit = output.usage.completion_tokens, int(params["max"])
    passed = used <= limit
    return _result("tokens", passed, f"{used} completion tokens ({'within' if passed else 'over'} {limit})")


# -- JSON -----------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.S)


def _valid_schema(params: Mapping[str, Any]) -> str | None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    for key in ("schema", "value"):
        if key in params:
            try:
                Draft202012Validator.check_schema(params[key])
            except SchemaError as exc:
                return f"{key}: not a valid JSON Schema ({exc.message})"
    return None


@register("is-json", {"value": ((dict,), False), "schema": ((dict,), False)}, _valid_schema)
def _is_json(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    text = output.text.strip()
    fenced = _FENCE.match(text)  # a model often wraps JSON in a ```json fence; the content is what counts
    try:
        data = json.loads(fenced.group(1) if fenced else text)
    except json.JSONDecodeError as exc:
        return _result("is-json", False, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    schema = params.get("schema", params.get("value"))
    if schema is None:
        return _result("is-json", True, "valid JSON")
    from jsonschema import Draft202012Validator  # only when a schema is given (checked when the file loaded)
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return _result("is-json", False, f"JSON does not match the schema at {where}: {error.message}")
    return _result("is-json", True, "valid JSON matching the schema")


# -- markdown shape -------------------------------------------------------------------------------------------

_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def markdown_tables(text: str) -> tuple[list[Table], list[str]]:
    """The pipe tables in ``text`` and the lines outside them (headings, paragraphs, list items)."""
    tables: list[Table] = []
    others: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if line.startswith("|") and _SEPARATOR.match(following):
            table = Table(_cells(line), [])
            index += 2
            while index < len(lines) and lines[index].strip().startswith("|"):
                table.rows.append(_cells(lines[index]))
                index += 1
            tables.append(table)
            continue
        if line:
            others.append(line)
        index += 1
    return tables, others


def _valid_table_params(params: Mapping[str, Any]) -> str | None:
    if not all(isinstance(name, str) and name.strip() for name in params.get("distinct", [])):
        return "distinct: list the columns by their header text, e.g. [Idea, Description]"
    overlap = params.get("distinct-overlap", DISTINCT_OVERLAP)
    if not 0.0 < float(overlap) <= 1.0:
        return f"distinct-overlap: {overlap} is outside (0, 1] (the share of words two cells share to repeat)"
    return None


@register(
    "markdown-tables",
    {
        "count": (_INT, False),
        "min-rows": (_INT, False),
        "max-rows": (_INT, False),
        "headings": ((list,), False),
        "distinct": ((list,), False),
        "distinct-overlap": (_NUMBER, False),
    },
    _valid_table_params,
)
def _markdown_tables(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    """The tables' count, rows and headings; ``distinct`` columns hold no cell twice (see :func:`repeated_cell`)."""
    tables, others = markdown_tables(output.text)
    problems: list[str] = []
    count = params.get("count")
    if count is not None and len(tables) != count:
        problems.append(f"{len(tables)} tables, expected {count}")
    low, high = params.get("min-rows"), params.get("max-rows")
    sizes = [len(table.rows) for table in tables]
    if low is not None:
        problems += _row_problem(sizes, lambda n: n < low, f"fewer than {low} rows")
    if high is not None:
        problems += _row_problem(sizes, lambda n: n > high, f"more than {high} rows")
    # A heading counts as a markdown heading line, a bold line, or a header cell of a table.
    titles = [line.lstrip("#").strip(" *:").lower() for line in others if line.startswith(("#", "**"))]
    titles += [cell.lower() for table in tables for cell in table.header]
    missing = [h for h in params.get("headings", []) if not any(str(h).lower() in title for title in titles)]
    if missing:
        problems.append(f"missing heading {', '.join(repr(m) for m in missing)}")
    overlap = float(params.get("distinct-overlap", DISTINCT_OVERLAP))
    repeats = [repeated_cell(tables, str(column), overlap) for column in params.get("distinct", [])]
    problems += [repeat for repeat in repeats if repeat is not None]
    # The score is the share of checks met: the count, each table's rows, each heading, each distinct column.
    rows_ok = [(low is None or n >= low) and (high is None or n <= high) for n in sizes]
    met = [
        count is None or len(tables) == count,
        *rows_ok,
        *(h not in missing for h in params.get("headings", [])),
        *(repeat is None for repeat in repeats),
    ]
    if problems:
        return _result("markdown-tables", False, "; ".join(problems), sum(met) / len(met))
    rows = ", ".join(str(len(t.rows)) for t in tables)
    return _result("markdown-tables", True, f"{len(tables)} tables ({rows} rows)")


# Two cells of a ``distinct`` column repeat when they are the same words, or, from DISTINCT_MIN_WORDS words
# on, when this share of their words is common to both (Jaccard): a small model fills a table of ideas
# with one row reworded, "Improve the delivery drivers' bonuses" then "...' promotions", or with one
# description under twenty ideas (DesignThinking.Ideate, docs/models.md).
DISTINCT_OVERLAP = 0.8
DISTINCT_MIN_WORDS = 4
_WORDS = re.compile(r"\w+")


def cells_repeat(first: str, second: str, overlap: float = DISTINCT_OVERLAP) -> bool:
    """Whether two cells of a ``distinct`` column count as one idea said twice (case, punctuation and
    spacing ignored): the rule :func:`repeated_cell` applies, for code that must keep a table passing it
    (DesignThinking.Ideate drops such a repeat and asks the model for another idea)."""
    return _same_idea(_WORDS.findall(first.lower()), _WORDS.findall(second.lower()), overlap)


def _same_idea(first: list[str], second: list[str], overlap: float) -> bool:
    if first == second:
        return True
    if min(len(first), len(second)) < DISTINCT_MIN_WORDS:
        return False
    a, b = set(first), set(second)
    return len(a & b) / len(a | b) >= overlap


def repeated_cell(tables: list[Table], column: str, overlap: float = DISTINCT_OVERLAP) -> str | None:
    """The first repeat among the cells of ``column`` (by header, any case) in every table, as one line,
    or None when they all differ; case, punctuation and spacing are ignored."""
    cells: list[tuple[str, str, list[str]]] = []  # (where, cell, words)
    found = False
    for number, table in enumerate(tables, 1):
        index = next((i for i, cell in enumerate(table.header) if cell.lower() == column.lower()), None)
        if index is None:
            continue
        found = True
        for row_number, row in enumerate(table.rows, 1):
            if index < len(row) and row[index]:
                where = f"table {number} row {row_number}" if len(tables) > 1 else f"row {row_number}"
                cells.append((where, row[index], _WORDS.findall(row[index].lower())))
    if not found:
        return f"no table has a column {column!r} to check for repeats"
    for later, (where, cell, words) in enumerate(cells):
        for earlier_where, earlier_cell, earlier_words in cells[:later]:
            if _same_idea(earlier_words, words, overlap):
                same = "repeats" if earlier_words == words else "nearly repeats"
                return (
                    f"{column!r} {same} itself: {earlier_where} {_short(earlier_cell, 50)}, {where} {_short(cell, 50)}"
                )
    return None


def _row_problem(sizes: list[int], wrong: Callable[[int], bool], what: str) -> list[str]:
    """One line for every table out of bounds: "tables 1, 3 have fewer than 3 rows (2, 1)"."""
    bad = [(number, size) for number, size in enumerate(sizes, 1) if wrong(size)]
    if not bad:
        return []
    numbers, counts = ", ".join(str(n) for n, _ in bad), ", ".join(str(c) for _, c in bad)
    verb = "has" if len(bad) == 1 else "have"
    return [f"table{'s' if len(bad) > 1 else ''} {numbers} {verb} {what} ({counts})"]


_END = re.compile(r"[.!?:;)\]\"'’”`*]$")
_CUT_MARK = re.compile(r"(\.\.\.|…)$")


def _unit_complete(unit: str, min_words: int) -> bool:
    text = unit.strip().rstrip("*_").strip()
    if _CUT_MARK.search(text):  # "…" or "..." at the end is the model saying it stopped mid-thought
        return False
    return len(text.split()) < min_words or bool(_END.search(text))


def _is_label_complete(label: str) -> bool:
    """A label (a row's name) needs no full stop, however long; only a cut mark says it stopped early."""
    return not _CUT_MARK.search(label.strip().rstrip("*_").strip())


def _validate_label_columns(params: Mapping[str, Any]) -> str | None:
    if params.get("label-columns", 0) < 0:
        return "label-columns: must be 0 or more (how many leading columns of a table name their row)"
    return None


@register("sentences-complete", {"min-words": (_INT, False), "label-columns": (_INT, False)}, _validate_label_columns)
def _sentences_complete(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    """Every table cell and paragraph of ``min-words`` words or more ends a sentence: a short label such as
    "Strong brand" needs no full stop, but "…which may help" is a sentence cut off.

    The first ``label-columns`` columns (default 1) of a table with more columns than that name their row
    ("High demand for pizza in a college town"): labels of any length, checked only for a cut mark ("…").
    The cells after them (a SWOT's "why it matters") and the prose outside tables must end a sentence.
    """
    min_words = int(params.get("min-words", 6))
    label_columns = int(params.get("label-columns", 1))
    tables, others = markdown_tables(output.text)
    units: list[tuple[str, bool]] = []  # (text, complete)
    for table in tables:
        labels = label_columns if len(table.header) > label_columns else 0
        for row in table.rows:
            for column, cell in enumerate(row):
                if cell:
                    complete = _is_label_complete(cell) if column < labels else _unit_complete(cell, min_words)
                    units.append((cell, complete))
    for line in others:
        if not line.startswith("#"):
            paragraph = re.sub(r"^([-*+]|\d+[.)])\s+", "", line)
            units.append((paragraph, _unit_complete(paragraph, min_words)))
    cut = [text for text, complete in units if not complete]
    if not units:
        return _result("sentences-complete", True, "no text to check")
    score = 1 - len(cut) / len(units)
    if cut:
        return _result(
            "sentences-complete",
            False,
            f"{len(cut)} of {len(units)} cells/paragraphs cut, e.g. {_short(cut[0][-50:])}",
            score,
        )
    return _result("sentences-complete", True, f"all {len(units)} cells/paragraphs end a sentence")


# Hiragana, katakana, CJK ideographs (and extension A), Hangul, compatibility ideographs, half-width katakana.
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]")


@register("no-cjk", {})
def _no_cjk(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    found = _CJK.search(output.text)
    if found is None:
        return _result("no-cjk", True, "no CJK characters")
    count = len(_CJK.findall(output.text))
    return _result("no-cjk", False, f"{count} CJK characters, the first {found.group()!r} at offset {found.start()}")
