"""A model's function call checked before it runs, and functions whose result is the answer itself.

Small models call tools loosely: the default tier called ``BusinessThinking-SWOT`` without its
``input``, and semantic-kernel's bare "missing required variable" ended the turn without a SWOT
(docs/models.md). So a call is checked against the function's parameters first (:func:`checked_arguments`):

- a near-miss argument name is read as the parameter it unambiguously means (``business`` → ``input``,
  the planner's rule: :func:`planners.arguments.map_near_misses`);
- arguments that are not a JSON object, or a required parameter still missing, do not run the function
  (nor ask anyone to approve a call that cannot run): the model is told which argument to pass, what it
  is, and shown the call to write, and the engine's next round gives it that second chance.

:func:`result_is_answer` marks a function whose result is what the user asked for, whole (the SWOT's
four tables). When such a call is the last of a round, its result is the turn's answer as it is and the
model is not asked again: semantic-kernel's ``terminate`` in an auto-invocation filter, LangChain's
``return_direct``. Given the tables back, the default tier retold them (and lost them) or echoed them,
minutes of generation each (docs/models.md). A request for more (the SWOT rewritten for a child) is the
next message, with the tables in the conversation, or a plan (``kernel-app plan``, ``/plan``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

RESULT_IS_ANSWER_ATTRIBUTE = "__kernel_app_result_is_answer__"
UNPARSED = "_unparsed"  # the engine's key for arguments that were not JSON (engine._arguments)
MAX_ECHO = 300  # characters of malformed arguments quoted back to the model


def result_is_answer(function: F) -> F:
    """Mark a native ``@kernel_function`` whose result is shown to the user as it is (put it above
    ``@kernel_function``); prompt functions say so with ``additional_properties={"result_is_answer": True}``."""
    setattr(function, RESULT_IS_ANSWER_ATTRIBUTE, True)
    return function


def is_answer(function: Any) -> bool:
    """Whether a semantic-kernel ``KernelFunction``'s result is the answer itself (see the module docstring)."""
    if getattr(getattr(function, "method", None), RESULT_IS_ANSWER_ATTRIBUTE, False):
        return True
    metadata = getattr(function, "metadata", None)
    properties: Mapping[str, Any] = getattr(metadata, "additional_properties", None) or {}
    return properties.get("result_is_answer") is True


def checked_arguments(function: Any, tool_name: str, arguments: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The arguments to run ``function`` with (near misses read as their parameter), and ``""``; or the
    model's arguments and the one-paragraph error that tells it how to call ``tool_name`` instead."""
    from planners.arguments import map_near_misses
    from planners.catalogue import FunctionInfo

    info = FunctionInfo.from_metadata(function.metadata)
    if UNPARSED in arguments:
        written = " ".join(str(arguments[UNPARSED]).split())
        if len(written) > MAX_ECHO:
            written = written[:MAX_ECHO] + "..."
        problem = f"the arguments of {tool_name} must be a JSON object, and {json.dumps(written)} is not one"
        return dict(arguments), _with_example(problem, tool_name, info, {}, info.required)
    mapped, _notes = map_near_misses(info, arguments)
    missing = [name for name in info.required if _absent(mapped.get(name))]
    if not missing:
        return mapped, ""
    about = "; ".join(f"'{name}' ({_described(info, name)})" for name in missing)
    needs = "argument" if len(missing) == 1 else "arguments"
    problem = f"{tool_name} needs the {needs} {about}, and the call did not give {_them(missing)}"
    return dict(arguments), _with_example(problem, tool_name, info, mapped, missing)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _them(missing: list[str]) -> str:
    return "it" if len(missing) == 1 else "them"


def _described(info: Any, name: str) -> str:
    parameter = info.parameter(name)
    return (parameter.description if parameter is not None else "") or "no description"


def _with_example(problem: str, tool_name: str, info: Any, given: Mapping[str, Any], missing: list[str]) -> str:
    # The call to write, with the missing values left for the model to fill in from the request: an
    # example value of its own would be copied (a small model passes "a family-run pizza shop" along).
    example = {name: value for name, value in given.items() if info.parameter(name) is not None}
    for name in missing:
        parameter = info.parameter(name)
        example[name] = 0 if parameter is not None and parameter.type in ("number", "integer") else "..."
    call = json.dumps({"name": tool_name, "arguments": example}, ensure_ascii=False)
    names = ", ".join(f"'{name}'" for name in missing)
    return (
        f"error: {problem}. Nothing ran. Call {tool_name} again with {names} set from the user's request, "
        f"in this form: {call}"
    )
