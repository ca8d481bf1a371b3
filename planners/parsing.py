"""Reading a model's answer as a plan, tolerantly; every failure is a :class:`PlanParseError`.

Tolerated: code fences, prose around the JSON, trailing commas, a bare list of steps, ``{"plan": ...}``
around the plan, a single step object, ``"function": "Plugin-Function"`` (the tool-call spelling) or
another case, ``"arguments"`` for ``"args"``, ``{{$x}}``/``${x}`` for ``$x``, a missing ``output``
(named ``stepN``), a step repeated verbatim right after itself (dropped), an output name reused by a
later step (renamed ``name_2``, references following it). Not tolerated (a repair turn asks again):
no JSON at all, JSON cut off (its first steps are NOT taken as a plan), an XML plan.
Only the shape is checked here; whether the plan fits the catalogue is ``validation``'s job.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from planners.catalogue import FunctionCatalogue
from planners.errors import PlanFormatError, PlanParseError
from planners.plan import Plan, PlanStep, reference_name

MAX_ANSWER_CHARS = 200_000
MAX_CANDIDATES = 64  # JSON start positions tried: bounds the work on pathological answers

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_XML_PLAN = re.compile(r"<\s*plan\b|<\s*function\.", re.I)
_TEMPLATE_REF = re.compile(r"^\s*(?:\{\{\s*\$([A-Za-z_]\w*)\s*\}\}|\$\{([A-Za-z_]\w*)\})\s*$")


@dataclass
class ParsedAnswer:
    plan: Plan
    # The model's explanation when it answered with no steps on purpose ("no function fits").
    reason: str | None = None


def parse_plan_answer(text: str | None, *, goal: str = "", catalogue: FunctionCatalogue | None = None) -> ParsedAnswer:
    """A model answer → a plan (names put in the catalogue's spelling when one is given)."""
    value = extract_json(text)
    plan, reason = _plan_from_value(value, goal)
    if catalogue is not None:
        plan = canonical_names(plan, catalogue)
    return ParsedAnswer(plan, reason)


# region finding the JSON


def extract_json(text: str | None) -> Any:
    """The first JSON object or array in ``text`` that looks like a plan (or else the first JSON value)."""
    if text is None or not text.strip():
        raise PlanParseError("the answer is empty: answer with the JSON plan")
    text = text[:MAX_ANSWER_CHARS]
    sources = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    first_value: Any = None
    found_value = False
    problem: str | None = None
    for source in sources:
        for value, error in _json_values(source):
            if error is not None:
                problem = problem or error
                continue
            if _looks_like_plan(value):
                return value
            if not found_value:
                first_value, found_value = value, True
    if found_value:
        return first_value
    if _XML_PLAN.search(text):
        raise PlanParseError(
            "the answer is an XML plan (Semantic Kernel's old format): answer with the JSON plan format instead"
        )
    if problem:
        raise PlanParseError(problem)
    start = " ".join(text.split())[:80]
    raise PlanParseError(f"the answer contains no JSON plan (it starts: {start!r}): answer with the JSON plan only")


def _json_values(source: str) -> list[tuple[Any, str | None]]:
    """(value, None) for each balanced JSON object/array in ``source``; (None, why) for broken ones.

    Inside a broken JSON value nothing is accepted: its inner objects are pieces of a plan (a cut-off
    answer's first step is not a one-step plan).
    """
    results: list[tuple[Any, str | None]] = []
    position = 0
    tried = 0
    while tried < MAX_CANDIDATES:
        starts = [i for i in (source.find("{", position), source.find("[", position)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        tried += 1
        end = _balanced_end(source, start)
        json_like = _starts_like_json(source, start)
        if end < 0:
            if not json_like:  # a stray bracket in prose
                position = start + 1
                continue
            why = "ends before its closing bracket (cut off?)" if end == _TRUNCATED else "has mismatched brackets"
            results.append((None, f"the JSON plan is incomplete: it {why}"))
            break
        value, error = _loads(source[start:end])
        if error is not None and not json_like:
            position = start + 1
            continue
        results.append((value, error))
        position = end
    return results


def _starts_like_json(source: str, start: int) -> bool:
    """``{"`` or ``[{`` / ``["`` / ``[]`` (spaces allowed): the start of JSON rather than of a bracket in prose."""
    rest = source[start + 1 :].lstrip()
    follows = ('"', "}") if source[start] == "{" else ("{", '"', "]")
    return rest[:1] in follows


_TRUNCATED, _MISMATCHED = -1, -2


def _json_chars(source: str, start: int = 0) -> Iterator[tuple[int, str, bool]]:
    """``(index, char, quoted)`` from ``start``: ``quoted`` for a string's characters and its quotes,
    tracking backslash escapes the way JSON does."""
    in_string = escaped = False
    for index in range(start, len(source)):
        char = source[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            yield index, char, True
        else:
            in_string = char == '"'
            yield index, char, in_string


def _balanced_end(source: str, start: int) -> int:
    """The index after the bracket closing the one at ``start`` (string-aware), else _TRUNCATED/_MISMATCHED."""
    stack: list[str] = []
    for index, char, quoted in _json_chars(source, start):
        if quoted:
            continue
        if char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack or char != stack[-1]:
                return _MISMATCHED
            stack.pop()
            if not stack:
                return index + 1
    return _TRUNCATED


def _loads(chunk: str) -> tuple[Any, str | None]:
    try:
        return json.loads(chunk), None
    except json.JSONDecodeError as error:
        first = error
    try:
        return json.loads(_drop_trailing_commas(chunk)), None
    except json.JSONDecodeError:
        pass
    return None, f"the JSON plan is not valid JSON: {first.msg} at line {first.lineno} column {first.colno}"


def _drop_trailing_commas(chunk: str) -> str:
    """Remove a comma before ``}`` or ``]`` (outside strings): the commonest hand-written JSON mistake."""
    return "".join(
        char
        for index, char, quoted in _json_chars(chunk)
        if quoted or char != "," or chunk[index + 1 :].lstrip()[:1] not in ("}", "]")
    )


def _looks_like_plan(value: Any) -> bool:
    if isinstance(value, dict):
        return any(key in value for key in ("steps", "plan", "function"))
    if isinstance(value, list):
        return bool(value) and all(isinstance(item, dict) and "function" in item for item in value)
    return False


# endregion

# region shaping


def _plan_from_value(value: Any, goal: str) -> tuple[Plan, str | None]:
    reason: str | None = None
    for _ in range(3):  # {"plan": {"plan": ...}} at most this deep
        if isinstance(value, dict) and "steps" not in value and "plan" in value:
            if isinstance(value.get("reason"), str):
                reason = value["reason"]
            value = value["plan"]
    if isinstance(value, list):
        raw_steps: Any = value
    elif isinstance(value, dict):
        if isinstance(value.get("reason"), str):
            reason = value["reason"]
        if "steps" in value:
            raw_steps = value["steps"]
        elif "function" in value:
            raw_steps = [value]
        else:
            keys = ", ".join(list(value)[:6]) or "none"
            raise PlanFormatError(f"the JSON object has no 'steps' (its keys: {keys}): use {{\"steps\": [...]}}")
    else:
        raise PlanFormatError(f"the JSON is a {type(value).__name__}, not a plan object with 'steps'")
    if raw_steps is None:
        raw_steps = []
    if not isinstance(raw_steps, list):
        raise PlanFormatError(f"'steps' must be a list of step objects, not {type(raw_steps).__name__}")
    steps: list[PlanStep] = []
    for number, raw in enumerate(raw_steps, 1):
        step = _step(number, raw)
        # A step repeated verbatim (same function, arguments and output) adds nothing: small models
        # loop like this. Dropping it changes no result; a repeat with any difference stays (and fails).
        if steps and step == steps[-1]:
            continue
        steps.append(step)
    steps = _rename_reused_outputs(steps)
    return Plan(goal=goal, steps=steps), (reason.strip() or None) if reason else None


def _step(number: int, raw: Any) -> PlanStep:
    if not isinstance(raw, dict):
        raise PlanFormatError(f"step {number} is a {type(raw).__name__}, not an object with 'function' and 'args'")
    function = raw.get("function")
    if isinstance(function, dict):  # {"function": {"name": ..., "arguments": ...}} (tool-call shape)
        raw = {**raw, **{k: v for k, v in function.items() if k != "name"}}
        function = function.get("name")
    if isinstance(raw.get("plugin"), str) and isinstance(function, str) and "." not in function:
        function = f"{raw['plugin']}.{function}"
    if not isinstance(function, str) or not function.strip():
        raise PlanFormatError(f"step {number} has no 'function': name one as \"Plugin.Function\"")
    args = next((raw[key] for key in ("args", "arguments", "parameters") if key in raw), {})
    if isinstance(args, str):  # tool calls carry arguments as a JSON string
        with contextlib.suppress(json.JSONDecodeError):
            args = json.loads(args) if args.strip() else {}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise PlanFormatError(f"step {number} ({function.strip()}): 'args' must be an object of name: value")
    output = raw.get("output")
    if output is None or (isinstance(output, str) and not output.strip()):
        output = f"step{number}"
    if not isinstance(output, str):
        raise PlanFormatError(f"step {number} ({function.strip()}): 'output' must be a name (a string)")
    output = output.strip()
    output = output[1:] if output.startswith("$") and not output.startswith("$$") else output
    return PlanStep(function=function.strip(), args={str(k): _reference(v) for k, v in args.items()}, output=output)


def _rename_reused_outputs(steps: list[PlanStep]) -> list[PlanStep]:
    """Read a reused output name as a new variable, as a program would: ``poem``, then ``poem_2``...

    A reference means the newest definition before it, so references are renamed along; nothing
    changes meaning. (Small models reuse one name for every step; a saved plan gets no such leniency:
    validation reports duplicates.)
    """
    current: dict[str, str] = {}  # name as written -> name it now stands for
    taken = {step.output for step in steps}
    renamed: list[PlanStep] = []
    for step in steps:
        args = {}
        for key, value in step.args.items():
            name = reference_name(value)
            args[key] = f"${current[name]}" if name is not None and name in current else value
        output = step.output
        if output in current:
            number = 2
            while f"{output}_{number}" in taken:
                number += 1
            new_name = f"{output}_{number}"
            taken.add(new_name)
        else:
            new_name = output
        current[output] = new_name
        renamed.append(PlanStep(function=step.function, args=args, output=new_name))
    return renamed


def _reference(value: Any) -> Any:
    """Semantic Kernel's template spelling ``{{$poem}}`` and the shell's ``${poem}`` mean ``$poem``."""
    if isinstance(value, str):
        match = _TEMPLATE_REF.match(value)
        if match:
            return "$" + (match.group(1) or match.group(2))
    return value


def canonical_names(plan: Plan, catalogue: FunctionCatalogue) -> Plan:
    """Function names in the catalogue's spelling; argument names too when they differ only in case."""
    steps = []
    for step in plan.steps:
        name = catalogue.canonical(step.function)
        info = catalogue.get(name)
        args = step.args
        if info is not None:
            by_lower = {p.lower(): p for p in info.parameter_names}
            args = {
                (key if key in info.parameter_names else by_lower.get(key.lower(), key)): value
                for key, value in step.args.items()
            }
        steps.append(PlanStep(function=name, args=args, output=step.output))
    return Plan(goal=plan.goal, steps=steps)


# endregion
