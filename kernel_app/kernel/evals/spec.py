"""Eval files: where they live, what they say, and strict loading with one-line errors.

An eval file is ``evals.yaml`` in a function folder (``Plugin/Function/evals.yaml``), ``NAME.evals.yaml``
beside a YAML prompt or a native plugin's module (``Plugin/NAME.evals.yaml``), or any YAML file that names
its function (``function: Plugin.Function`` at its top, or ``--function``). A file that evaluates a
planner instead says ``planner: sequential`` (or ``action``) at its top: each case's ``input`` is a goal and
the output is the plan made for it, checked with ``plan-functions``. Errors read like the plugin loader's:
``FILE:LINE: what is wrong: what to do``.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kernel_app.base.errors import DependencyMissingError, Problem, UsageError
from kernel_app.kernel.evals.assertions import ASSERTIONS

EVALS_FILE = "evals.yaml"
EVALS_SUFFIX = ".evals.yaml"

FILE_KEYS = {"description", "function", "planner", "defaults", "cases", "dataset"}
DEFAULTS_KEYS = {"vars", "assert"}
CASE_KEYS = {"description", "vars", "input", "expected", "assert"}
ASSERTION_COMMON_KEYS = {"type", "description"}


class EvalFileError(UsageError):
    """An eval file that cannot be used: the message is ``FILE:LINE: problem: what to do``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class AssertionSpec:
    type: str
    params: dict[str, Any]
    line: int | None = None


@dataclass
class EvalCase:
    id: str
    description: str
    vars: dict[str, Any]
    expected: str | None
    asserts: list[AssertionSpec]


@dataclass
class EvalFile:
    path: Path
    function: str  # Plugin.Function, or "planner:KIND" for a planner's file (the name reports show)
    description: str = ""
    cases: list[EvalCase] = field(default_factory=list)
    planner: str | None = None  # the planner kind whose plans are evaluated, instead of a function


PLANNER_PREFIX = "planner:"
PLAN_ASSERTIONS = frozenset({"plan-functions"})  # the types that read the output as a plan


# -- YAML with line numbers ------------------------------------------------------------------------------------


class _Mapping(dict[str, Any]):
    """A YAML mapping that remembers the line of each key (1-based) and its own."""

    line: int = 0
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Mapping:
    mapping = _Mapping()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[str(key)] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[str(key)] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Reader:
    """Checks one file's values, raising the first problem with its line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, line: int | None, field_name: str, message: str, hint: str) -> EvalFileError:
        where = f"{field_name}: " if field_name else ""
        return EvalFileError(Problem(str(self.path), where + message, hint, line=line))

    def mapping(self, value: Any, where: str, line: int | None, known: set[str]) -> _Mapping:
        if not isinstance(value, _Mapping):
            raise self.fail(line, where, f"expected a mapping, got {_kind(value)}", "write `key: value` lines")
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
                raise self.fail(value.key_lines.get(key), f"{where}.{key}" if where else key, "unknown key", hint)
        return value

    def typed(self, mapping: _Mapping, key: str, where: str, types: tuple[type, ...], what: str) -> Any:
        value = mapping.get(key)
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise self.fail(
                mapping.key_lines.get(key), f"{where}{key}", f"expected {what}, got {_kind(value)}", f"write {what}"
            )
        return value


_TYPE_WORDS = {
    str: "text",
    int: "a whole number",
    float: "a number",
    dict: "a mapping",
    list: "a list",
    bool: "true/false",
}


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    kind = dict if isinstance(value, dict) else type(value)
    return _TYPE_WORDS.get(kind, f"a {kind.__name__}")


# -- loading -----------------------------------------------------------------------------------------------------


def function_for(path: Path) -> str | None:
    """The function an eval file's location names: ``Plugin/Function/evals.yaml`` or ``Plugin/NAME.evals.yaml``."""
    if path.name == EVALS_FILE:
        return f"{path.parent.parent.name}.{path.parent.name}"
    if path.name.endswith(EVALS_SUFFIX):
        return f"{path.parent.name}.{path.name[: -len(EVALS_SUFFIX)]}"
    return None


def plugin_directory_of(eval_file: EvalFile) -> Path | None:
    """The plugin directory that holds the function an eval file sits beside (``DIR/Plugin/Function/evals.yaml``
    or ``DIR/Plugin/NAME.evals.yaml`` next to ``NAME.yaml``/``.py``), or None for a file kept elsewhere."""
    path = eval_file.path
    if function_for(path) != eval_file.function:
        return None
    if path.name == EVALS_FILE:
        found = (path.parent / "skprompt.txt").is_file()
        return path.parent.parent.parent if found else None
    stem = path.name[: -len(EVALS_SUFFIX)]
    plugin = path.parent
    beside = [plugin / f"{stem}{suffix}" for suffix in (".yaml", ".yml")] + list(plugin.glob("*.py"))
    return plugin.parent if any(p.is_file() for p in beside) else None


def discover(paths: list[Path]) -> list[Path]:
    """Eval files under ``paths``: a file as given; a folder's ``evals.yaml`` and ``*.evals.yaml``, recursively;
    a function's path without a folder (``Plugin/NAME`` of a native function) its ``Plugin/NAME.evals.yaml``."""
    found: list[Path] = []
    for path in paths:
        beside = path.with_name(path.name + EVALS_SUFFIX)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.rglob("*.yaml") if p.name == EVALS_FILE or p.name.endswith(EVALS_SUFFIX))
        elif beside.is_file():
            found.append(beside)
        else:
            raise UsageError(f"{path}: no such file or folder: give an eval file or a plugin/function folder")
    return found


def load_eval_file(
    path: Path, function: str | None = None, *, datasets_under: Sequence[Path] | None = None
) -> EvalFile:
    """Read and check ``path``. ``function`` (``--function``) is used when the file does not name one;
    ``datasets_under``: the folders a ``dataset:`` may be read from (None: anywhere)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Reader(path).fail(
            None, "file", f"cannot read it ({exc})", "check the path and that it is UTF-8"
        ) from exc
    return parse_eval_text(text, path, function, datasets_under=datasets_under)


def parse_eval_text(
    text: str, path: Path, function: str | None = None, *, datasets_under: Sequence[Path] | None = None
) -> EvalFile:
    """Check an eval file's ``text``; ``path`` names it in errors and is where a ``dataset:`` is looked
    up, only under ``datasets_under`` when given (a server reads no file its caller could not)."""
    reader = _Reader(path)
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # a SafeLoader that only adds line numbers
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise reader.fail(
            mark.line + 1 if mark else None, "YAML", str(problem), "fix the YAML syntax (indentation, a quote?)"
        ) from exc
    top = reader.mapping(raw, "", 1, FILE_KEYS)
    named = reader.typed(top, "function", "", (str,), "Plugin.Function")
    planner = _planner(reader, top, named)
    target = f"{PLANNER_PREFIX}{planner}" if planner else named or function or function_for(path)
    if not target:
        raise reader.fail(
            1, "function", "the file names no function", "add `function: Plugin.Function` at its top or pass --function"
        )
    description = reader.typed(top, "description", "", (str,), "text") or ""
    defaults = _defaults(reader, top)
    cases_raw = reader.typed(top, "cases", "", (list,), "a list of cases") or []
    cases = [_case(reader, item, index, top.key_lines.get("cases"), defaults) for index, item in enumerate(cases_raw)]
    dataset = reader.typed(top, "dataset", "", (str,), "a CSV or JSONL file name")
    if dataset:
        dataset_path = path.parent / dataset
        if datasets_under is not None and not _is_under(dataset_path, datasets_under):
            raise reader.fail(
                top.key_lines.get("dataset"),
                "dataset",
                "not read here: it is outside the plugin folders",
                "put the dataset beside the eval file in a plugin folder",
            )
        cases += _dataset_cases(reader, dataset_path, top.key_lines.get("dataset"), defaults, len(cases))
    if not cases:
        raise reader.fail(
            top.line, "cases", "no cases", "add `cases:` with at least one `- vars: {...}`, or a `dataset:`"
        )
    _check_planner_cases(reader, top, cases, planner)
    return EvalFile(path, target, description, cases, planner)


def _check_planner_cases(reader: _Reader, top: _Mapping, cases: list[EvalCase], planner: str | None) -> None:
    """A planner's case needs a goal; a plan assertion needs a planner's file (a function's output is no plan)."""
    if planner:
        goalless = next((c for c in cases if not str(c.vars.get("input", "")).strip()), None)
        if goalless is not None:
            raise reader.fail(
                top.key_lines.get("cases"),
                f"cases[{cases.index(goalless)}].input",
                "a planner's case needs a goal",
                "add `input: GOAL`",
            )
        return
    for index, case in enumerate(cases):
        misplaced = next((a for a in case.asserts if a.type in PLAN_ASSERTIONS), None)
        if misplaced is not None:
            raise reader.fail(
                misplaced.line,
                f"cases[{index}].assert",
                f"{misplaced.type} checks a plan, and this file evaluates a function",
                "say `planner: sequential` at the top instead of `function:`",
            )


def _planner(reader: _Reader, top: _Mapping, function: str | None) -> str | None:
    """The planner kind a file evaluates (``planner: sequential``), checked; None for a function's file."""
    from planners.factory import PLANNER_KINDS, proposes_plan

    kind = reader.typed(top, "planner", "", (str,), "a planner kind")
    if kind is None:
        return None
    line = top.key_lines.get("planner")
    if function is not None:
        raise reader.fail(line, "planner", "a file evaluates a function or a planner, not both", "drop `function:`")
    planning = [k for k in PLANNER_KINDS if proposes_plan(k)]
    if kind not in PLANNER_KINDS:
        close = difflib.get_close_matches(kind, planning, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(planning)}"
        raise reader.fail(line, "planner", f"unknown planner {kind!r}", hint)
    if not proposes_plan(kind):
        raise reader.fail(line, "planner", f"{kind} makes no plan to evaluate", f"use one of {', '.join(planning)}")
    return kind


@dataclass
class _Defaults:
    vars: dict[str, Any]
    asserts: list[AssertionSpec]


def _defaults(reader: _Reader, top: _Mapping) -> _Defaults:
    if "defaults" not in top:
        return _Defaults({}, [])
    section = reader.mapping(top["defaults"], "defaults", top.key_lines.get("defaults"), DEFAULTS_KEYS)
    variables = reader.typed(section, "vars", "defaults.", (dict,), "a mapping of variable -> value") or {}
    asserts = _asserts(reader, section, "defaults.")
    return _Defaults(dict(variables), asserts)


def _case(reader: _Reader, raw: Any, index: int, line: int | None, defaults: _Defaults) -> EvalCase:
    where = f"cases[{index}]"
    case = reader.mapping(raw, where, line, CASE_KEYS)
    variables = dict(defaults.vars)
    variables.update(reader.typed(case, "vars", f"{where}.", (dict,), "a mapping of variable -> value") or {})
    if "input" in case:
        variables["input"] = case["input"]
    expected = reader.typed(case, "expected", f"{where}.", (str,), "the ideal answer as text")
    description = reader.typed(case, "description", f"{where}.", (str,), "text") or _describe(variables)
    asserts = defaults.asserts + _asserts(reader, case, f"{where}.")
    if not asserts:
        raise reader.fail(case.line, where, "no assertions", "add `assert:` here or under `defaults:`")
    unreferenced = _without_reference(asserts, expected)
    if unreferenced is not None:
        raise reader.fail(
            unreferenced.line or case.line,
            f"{where}.expected",
            f"{unreferenced.type} compares with a reference text and there is none",
            f"add `expected:` to the case or `value:` to the {unreferenced.type}",
        )
    return EvalCase(f"case-{index + 1}", description, variables, expected, asserts)


def _asserts(reader: _Reader, section: _Mapping, where: str) -> list[AssertionSpec]:
    items = reader.typed(section, "assert", where, (list,), "a list of assertions") or []
    return [
        _assertion(reader, item, f"{where}assert[{i}]", section.key_lines.get("assert")) for i, item in enumerate(items)
    ]


def _assertion(reader: _Reader, raw: Any, where: str, line: int | None) -> AssertionSpec:
    if not isinstance(raw, _Mapping):
        raise reader.fail(line, where, f"expected a mapping, got {_kind(raw)}", "write `{type: contains, value: ...}`")
    name = raw.get("type")
    if not isinstance(name, str):
        raise reader.fail(raw.line, f"{where}.type", "missing or not text", "name an assertion type, e.g. contains")
    kind = ASSERTIONS.get(name)
    if kind is None:
        close = difflib.get_close_matches(name, sorted(ASSERTIONS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known types: {', '.join(sorted(ASSERTIONS))}"
        raise reader.fail(raw.key_lines.get("type"), f"{where}.type", f"unknown assertion type {name!r}", hint)
    known = ASSERTION_COMMON_KEYS | set(kind.params)
    reader.mapping(raw, where, raw.line, known)
    params: dict[str, Any] = {}
    for key, (types, required) in kind.params.items():
        if key not in raw:
            if required:
                raise reader.fail(raw.line, f"{where}.{key}", f"{name} needs it", f"add `{key}: ...`")
            continue
        what = " or ".join(dict.fromkeys(_TYPE_WORDS[t] for t in types))
        params[key] = reader.typed(raw, key, f"{where}.", types, what)
    try:
        problem = kind.validate(params) if kind.validate is not None else None
    except DependencyMissingError as exc:  # a metric's library is missing: the install, on this file's line
        raise reader.fail(raw.key_lines.get("type"), f"{where}.type", str(exc), "then run the eval again") from exc
    if problem is not None:
        key, _, message = problem.partition(": ")
        raise reader.fail(raw.key_lines.get(key, raw.line), f"{where}.{key}", message, f"fix the {key} of {name}")
    return AssertionSpec(name, params, raw.line)


def _without_reference(asserts: list[AssertionSpec], expected: str | None) -> AssertionSpec | None:
    """The first assertion that needs a reference text (``value`` or the case's ``expected``) and has none."""
    if expected is not None:
        return None
    return next((a for a in asserts if ASSERTIONS[a.type].needs_reference and "value" not in a.params), None)


def _is_under(path: Path, folders: Sequence[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder.resolve()) for folder in folders)


def _describe(variables: dict[str, Any]) -> str:
    text = " ".join(str(variables.get("input", next(iter(variables.values()), ""))).split())
    return text if len(text) <= 60 else text[:59] + "…"


def _dataset_cases(reader: _Reader, path: Path, line: int | None, defaults: _Defaults, first: int) -> list[EvalCase]:
    """A CSV (a header row; columns become vars) or JSONL (an object a line) file: one case per row. A column
    named ``expected`` is the ideal answer; the assertions are the file's defaults."""
    if not path.is_file():
        raise reader.fail(line, "dataset", f"{path} does not exist", "give a CSV or JSONL path relative to this file")
    if not defaults.asserts:
        raise reader.fail(line, "dataset", "dataset cases have no assertions", "add `defaults: {assert: [...]}`")
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [dict(row) for row in csv.DictReader(handle)]
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise EvalFileError(
                    Problem(str(path), f"invalid JSON: {exc.msg}", "write one JSON object a line", line=number)
                ) from exc
            if not isinstance(row, dict):
                raise EvalFileError(Problem(str(path), "expected a JSON object", 'write {"input": ...}', line=number))
            rows.append(row)
    else:
        raise reader.fail(line, "dataset", f"{path.name} is neither .csv nor .jsonl", "use a CSV or JSONL file")
    cases: list[EvalCase] = []
    for offset, row in enumerate(rows):
        expected = row.pop("expected", None)
        variables = {**defaults.vars, **row}
        number = first + offset + 1
        unreferenced = _without_reference(defaults.asserts, expected)
        if unreferenced is not None:
            raise EvalFileError(
                Problem(
                    str(path),
                    f"row {offset + 1}: {unreferenced.type} compares with a reference text and there is none",
                    "add an `expected` column (or field) or give the assertion a `value`",
                    line=offset + 2 if path.suffix.lower() == ".csv" else None,
                )
            )
        cases.append(EvalCase(f"case-{number}", _describe(variables), variables, expected, list(defaults.asserts)))
    return cases
