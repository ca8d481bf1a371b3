"""Reading a slash command's arguments: what follows the command name, before anything runs.

``> NAME`` after a command keeps its result; ``$NAME`` refers to one; leading ``name=value`` words (and
``--var-json`` / ``--vars``) are a function's variables; ``/plan``'s options; a plan step's edit
``STEP name=value``. Bad input is a one-line :class:`~kernel_app.base.errors.UsageError` saying what to type.
"""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Mapping
from typing import Any

from kernel_app.base.errors import UsageError

_VARIABLE = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)(?:\s|$)""")
_NAMED = re.compile(r"^(?P<command>.*?)\s+>\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$", re.DOTALL)
_REFERENCE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def result_name(rest: str) -> tuple[str, str | None]:
    """``... > NAME`` at the end of a command keeps its result as ``$NAME``."""
    match = _NAMED.match(rest)
    if match is None:
        return rest, None
    return match.group("command"), match.group("name")


def resolve_results(text: str, results: Mapping[str, str]) -> str:
    """``$last`` and ``$NAME`` (named with ``> NAME``) replaced by the results they name."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in results:
            known = ", ".join(f"${n}" for n in results) or "none yet"
            raise UsageError(f"no result named ${name}: name one with `> {name}` after a command (known: {known})")
        return results[name]

    return _REFERENCE.sub(value, text)


def plan_options(rest: str) -> tuple[dict[str, Any], str]:
    """Leading ``--planner P``, ``--exclude A,B`` (repeatable) and ``--max-functions N``; the rest is the goal.

    The planner's kind is checked by the planner factory (:func:`planners.factory.planner_kind`), so
    every surface accepts the same kinds."""
    from planners.factory import DEFAULT_PLANNER, planner_kind

    options: dict[str, Any] = {"planner": DEFAULT_PLANNER, "exclude": [], "max_functions": None}
    words = rest.split()
    while words and words[0].startswith("--"):
        flag, _, inline = words.pop(0).partition("=")
        if flag not in ("--planner", "--exclude", "--max-functions"):
            raise UsageError(f"unknown /plan option {flag}: use --planner, --exclude or --max-functions")
        value = inline or (words.pop(0) if words else "")
        if not value:
            raise UsageError(f"/plan {flag} needs a value")
        if flag == "--planner":
            options["planner"] = planner_kind(value)
        elif flag == "--exclude":
            options["exclude"] += [part for part in value.split(",") if part]
        elif not value.isdigit() or int(value) < 1:
            raise UsageError(f"/plan --max-functions takes a positive number, not {value!r}")
        else:
            options["max_functions"] = int(value)
    return options, " ".join(words)


def plan_command(text: str) -> tuple[dict[str, Any], str, str | None]:
    """A whole ``/plan ...`` message read as the REPL reads it: (its options, the goal, its ``> NAME``)."""
    parts = text.split(None, 1)
    rest, named = result_name(parts[1] if len(parts) > 1 else "")
    options, goal = plan_options(rest)
    return options, goal, named


def edited_plan(plan: Any, edit: str) -> Any:
    """``2 language=German`` sets step 2's argument; values are JSON where they parse (numbers, lists)."""
    import json

    number, _, assignments = edit.strip().partition(" ")
    if not number.isdigit() or not 1 <= int(number) <= len(plan.steps):
        raise UsageError(f"edit a step as STEP name=value, e.g. 1 a=5 (steps 1 to {len(plan.steps)})")
    variables, rest = variables_and_text(assignments)
    if not variables or rest:
        raise UsageError("edit a step as STEP name=value, e.g. 1 a=5")
    step = plan.steps[int(number) - 1]
    args = dict(step.args)
    for name, value in variables.items():
        try:
            args[name] = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            args[name] = value
    steps = list(plan.steps)
    steps[int(number) - 1] = step.model_copy(update={"args": args})
    return plan.model_copy(update={"steps": steps})


def variables_and_text(arguments: str) -> tuple[dict[str, object], str]:
    """Leading ``name=value`` words are variables (``language="Brazilian Portuguese"`` may be quoted),
    and so are ``--var-json NAME='JSON'`` and ``--vars FILE``, as on the command line; the rest, as typed,
    is the input text."""
    from pathlib import Path

    from kernel_app.kernel.plugin_folders.structured_vars import load_vars_file, parse_json_vars, to_kernel_value

    variables: dict[str, object] = {}
    rest = arguments.strip()
    while rest:
        flag = rest.split(None, 1)[0]
        if flag in ("--var-json", "--vars"):
            stream = io.StringIO(rest[len(flag) :])  # read again below for what follows the value
            lexer = shlex.shlex(stream, posix=True)
            lexer.whitespace_split = True
            value = lexer.get_token() or ""
            found = parse_json_vars([value]) if flag == "--var-json" else load_vars_file(Path(value).expanduser())
            variables.update({name: to_kernel_value(v) for name, v in found.items()})
            rest = stream.read().lstrip()
            continue
        match = _VARIABLE.match(rest)
        if match is None:
            break
        value = match.group(2)
        variables[match.group(1)] = shlex.split(value)[0] if value[:1] in "\"'" else value
        rest = rest[match.end() :].lstrip()
    return variables, rest


def split_first(text: str) -> tuple[str, str]:
    """``COLLECTION rest of the question`` (the collection may be quoted); ValueError when either is missing."""
    parts = shlex.split(text) if text.startswith(('"', "'")) else text.split(None, 1)
    if len(parts) < 2 or not parts[0] or not " ".join(parts[1:]).strip():
        raise ValueError(text)
    return parts[0], " ".join(parts[1:]).strip()
