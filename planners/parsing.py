"""Reading a model's answer as a plan, tolerantly; every failure is a :class:`PlanParseError`.

Tolerated: code fences, prose around the JSON, trailing commas, a bare list of steps, ``{"plan": ...}``
around the plan, a single step object, ``"function": "Plugin-Function"`` (the tool-call spelling) or
another case, ``"arguments"`` for ``"args"``, ``{{$x}}``/``${x}`` for ``$x``, a missing ``output``
(named ``stepN``), a step repeated verbatim right after itself (dropped), an output name reused by a
later step (renamed ``name_2``, references following it). Not tolerated (a repair turn asks again):
no JSON at all, JSON cut off (its first steps are NOT taken as a plan), JSON with comments, more than
one plan or step object side by side (``1) {...} 2) {...}``), an answer over ``MAX_ANSWER_CHARS``, an
XML plan: whatever cannot be read WHOLE is a repair, never a shorter plan.
Only the shape is checked here; whether the plan fits the catalogue is ``validation``'s job.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from planners.arguments import map_near_misses, read_bare_references, read_near_miss_references
from planners.catalogue import FunctionCatalogue
from planners.errors import PlanFormatError, PlanParseError
from planners.plan import Plan, PlanStep, reference_name
from planners.quoting import quoted, shortened

MAX_ANSWER_CHARS = 200_000
MAX_JSON_DEPTH = 64  # brackets nested in one JSON value: a plan needs about 4 plus its argument values

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
    """The one JSON plan in ``text`` (or else its first JSON value); a PlanParseError when the answer
    cannot be read WHOLE.

    Fenced blocks are read first; the whole text when they hold no JSON. Within what is read, a broken
    JSON value anywhere, or more than one value shaped like a plan or a step (``1) {...} 2) {...}``), is
    an error: taking the readable part would run a shorter plan than the model wrote.
    """
    if text is None or not text.strip():
        raise PlanParseError("the answer is empty: answer with the JSON plan")
    if len(text) > MAX_ANSWER_CHARS:
        # Reading only a prefix could drop later steps; an answer this long is no plan anyway.
        raise PlanParseError(
            f"the answer is {len(text)} characters long; at most {MAX_ANSWER_CHARS} are read: "
            "answer with the JSON plan only"
        )
    fenced = [result for m in _FENCE.finditer(text) for result in _json_values(m.group(1))]
    results = fenced or _json_values(text)
    errors = [error for _, error in results if error is not None]
    if errors:
        raise PlanParseError(errors[0])
    values = [value for value, _ in results]
    plans: list[Any] = []
    for value in values:
        if _looks_like_plan(value) and value not in plans:  # the same plan twice (fenced and not) is one plan
            plans.append(value)
    if len(plans) > 1:
        raise PlanParseError(
            f"the answer holds {len(plans)} separate JSON plans or steps: answer with ONE "
            '{"steps": [...]} object that holds every step'
        )
    if plans:
        return plans[0]
    if values:
        return values[0]
    if _XML_PLAN.search(text):
        raise PlanParseError(
            "the answer is an XML plan (Semantic Kernel's old format): answer with the JSON plan format instead"
        )
    start = " ".join(text[:400].split())
    raise PlanParseError(
        f"the answer contains no JSON plan (it starts: {quoted(start)}): answer with the JSON plan only"
    )


# Where JSON (or an attempt at it) starts: "{" before a key ("...", 'single', bare: or a comment) or "}";
# "[" before an object, text, "]" or a comment. Any other bracket is prose (a markdown link, "{this}"):
# skipped at the cost of one regex step, so no number of them can exhaust the scan.
_JSON_START = re.compile(r"""\{\s*(?:["'}]|//|/\*|[A-Za-z_$][\w$]*\s*:)|\[\s*(?:[{"\]]|//|/\*)""")


def _json_values(source: str) -> list[tuple[Any, str | None]]:
    """(value, None) for each top-level JSON value in ``source``; (None, why) for a broken one.

    Linear time: each JSON-like start is scanned once to its closing bracket and the scan goes on after
    it; inside a value nothing more is looked for (its inner objects are pieces of it, not plans).
    A value that never closes, or closes with the wrong bracket, ends the scan.
    """
    results: list[tuple[Any, str | None]] = []
    position = 0
    while (match := _JSON_START.search(source, position)) is not None:
        start = match.start()
        end = _balanced_end(source, start)
        if end < 0:
            results.append((None, _BROKEN[end]))
            break
        results.append(_loads(source[start:end]))
        position = end
    return results


_TRUNCATED, _MISMATCHED, _TOO_DEEP = -1, -2, -3
_BROKEN = {
    _TRUNCATED: "the JSON plan is incomplete: it ends before its closing bracket (cut off?)",
    _MISMATCHED: "the JSON plan is incomplete: it has mismatched brackets",
    _TOO_DEEP: f"the JSON is nested more than {MAX_JSON_DEPTH} brackets deep: a plan is far flatter",
}


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
    """The index after the bracket closing the one at ``start`` (string-aware), else _TRUNCATED,
    _MISMATCHED or _TOO_DEEP (deeper than any plan; json.loads would hit the recursion limit)."""
    stack: list[str] = []
    for index, char, quoted_char in _json_chars(source, start):
        if quoted_char:
            continue
        if char in "{[":
            stack.append("}" if char == "{" else "]")
            if len(stack) > MAX_JSON_DEPTH:
                return _TOO_DEEP
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
        first: ValueError = error
    except ValueError as error:  # e.g. an integer of more than 4300 digits (Python's int limit)
        first = error
    try:
        return json.loads(_drop_trailing_commas(chunk)), None
    except ValueError:
        pass
    if _has_comment(chunk):
        return None, "the JSON plan has comments (// or /* */), which JSON does not allow: answer with plain JSON"
    if isinstance(first, json.JSONDecodeError):
        return None, f"the JSON plan is not valid JSON: {first.msg} at line {first.lineno} column {first.colno}"
    return None, f"the JSON plan is not valid JSON: {shortened(str(first), 80)}"


_CLOSER_AHEAD = re.compile(r"\s*[}\]]")


def _drop_trailing_commas(chunk: str) -> str:
    """Remove a comma before ``}`` or ``]`` (outside strings): the commonest hand-written JSON mistake."""
    return "".join(
        char
        for index, char, quoted_char in _json_chars(chunk)
        if quoted_char or char != "," or not _CLOSER_AHEAD.match(chunk, index + 1)
    )


def _has_comment(chunk: str) -> bool:
    return any(
        char == "/" and chunk[index + 1 : index + 2] in ("/", "*")
        for index, char, quoted_char in _json_chars(chunk)
        if not quoted_char
    )


def _object(value: object) -> dict[Any, Any] | None:
    """``value`` as a JSON object, or None when it is not one (json.loads returns untyped containers)."""
    return cast("dict[Any, Any]", value) if isinstance(value, dict) else None


def _array(value: object) -> list[Any] | None:
    """``value`` as a JSON array, or None when it is not one."""
    return cast("list[Any]", value) if isinstance(value, list) else None


def _looks_like_plan(value: Any) -> bool:
    if (obj := _object(value)) is not None:
        return any(key in obj for key in ("steps", "plan", "function"))
    if (items := _array(value)) is not None:
        return bool(items) and all((step := _object(item)) is not None and "function" in step for item in items)
    return False


# endregion

# region shaping


def _plan_from_value(value: Any, goal: str) -> tuple[Plan, str | None]:
    reason: str | None = None
    for _ in range(3):  # {"plan": {"plan": ...}} at most this deep
        nested = _object(value)
        if nested is not None and "steps" not in nested and "plan" in nested:
            if isinstance(nested.get("reason"), str):
                reason = nested["reason"]
            value = nested["plan"]
    raw_steps: Any
    if (items := _array(value)) is not None:
        raw_steps = items
    elif (obj := _object(value)) is not None:
        if isinstance(obj.get("reason"), str):
            reason = obj["reason"]
        if "steps" in obj:
            raw_steps = obj["steps"]
        elif "function" in obj:
            raw_steps = [obj]
        else:
            keys = ", ".join(quoted(key, 30) for key in list(obj)[:6]) or "none"
            raise PlanFormatError(f"the JSON object has no 'steps' (its keys: {keys}): use {{\"steps\": [...]}}")
    else:
        raise PlanFormatError(f"the JSON is a {type(value).__name__}, not a plan object with 'steps'")
    if raw_steps is None:
        raw_steps = []
    step_values = _array(raw_steps)
    if step_values is None:
        raise PlanFormatError(f"'steps' must be a list of step objects, not {type(raw_steps).__name__}")
    steps: list[PlanStep] = []
    for number, raw in enumerate(step_values, 1):
        step = _step(number, raw)
        # A step repeated verbatim (same function, arguments and output) adds nothing: small models
        # loop like this. Dropping it changes no result; a repeat with any difference stays (and fails).
        if steps and step == steps[-1]:
            continue
        steps.append(step)
    steps = _rename_reused_outputs(steps)
    return Plan(goal=goal, steps=steps), (reason.strip() or None) if reason else None


def _step(number: int, value: Any) -> PlanStep:
    raw = _object(value)
    if raw is None:
        raise PlanFormatError(f"step {number} is a {type(value).__name__}, not an object with 'function' and 'args'")
    function: Any = raw.get("function")
    if (call := _object(function)) is not None:  # {"function": {"name": ..., "arguments": ...}} (tool-call shape)
        raw = {**raw, **{k: v for k, v in call.items() if k != "name"}}
        function = call.get("name")
    if isinstance(raw.get("plugin"), str) and isinstance(function, str) and "." not in function:
        function = f"{raw['plugin']}.{function}"
    if not isinstance(function, str) or not function.strip():
        raise PlanFormatError(f"step {number} has no 'function': name one as \"Plugin.Function\"")
    args: Any = next((raw[key] for key in ("args", "arguments", "parameters") if key in raw), None)  # None: {}
    if isinstance(args, str):  # tool calls carry arguments as a JSON string
        # ValueError covers JSONDecodeError and over-long integers; RecursionError a string nested too deep.
        with contextlib.suppress(ValueError, RecursionError):
            args = json.loads(args) if args.strip() else {}
    if args is None:
        args = {}
    arguments = _object(args)
    if arguments is None:
        raise PlanFormatError(f"step {number} ({quoted(function.strip())}): 'args' must be an object of name: value")
    output: Any = raw.get("output")
    if output is None or (isinstance(output, str) and not output.strip()):
        output = f"step{number}"
    if not isinstance(output, str):
        raise PlanFormatError(f"step {number} ({quoted(function.strip())}): 'output' must be a name (a string)")
    output = output.strip()
    output = output[1:] if output.startswith("$") and not output.startswith("$$") else output
    args = {str(k): _reference(v) for k, v in arguments.items()}
    return PlanStep(function=function.strip(), args=args, output=output)


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
        args: dict[str, Any] = {}
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
    """Function names in the catalogue's spelling; argument names too when they differ only in case,
    an unambiguous near-miss argument name as its parameter, and an undefined ``$name`` as the one
    earlier output it is a near miss of, each noted on the step (planners.arguments)."""
    steps: list[PlanStep] = []
    earlier: dict[str, int] = {}
    outputs = {step.output for step in plan.steps}
    for number, step in enumerate(plan.steps, 1):
        name = catalogue.canonical(step.function)
        info = catalogue.get(name)
        args = step.args
        notes: list[str] = []
        if info is not None:
            by_lower = {p.lower(): p for p in info.parameter_names}
            args = {
                (key if key in info.parameter_names else by_lower.get(key.lower(), key)): value
                for key, value in step.args.items()
            }
            args, notes = map_near_misses(info, args)
            args, more = read_bare_references(info, args, earlier)
            notes += more
        args, more = read_near_miss_references(args, earlier, outputs)
        notes += more
        steps.append(PlanStep(function=name, args=args, output=step.output, notes=notes))
        earlier.setdefault(step.output, number)
    return Plan(goal=plan.goal, steps=steps)


# endregion
