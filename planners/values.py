"""What an argument value may be: JSON that survives saving and loading unchanged.

- text, a finite number, a boolean, null, or lists and objects of these;
- nested at most ``MAX_VALUE_DEPTH`` lists/objects deep (deeper values broke ``--json``/``--save`` with
  "Circular reference detected" and cost recursion everywhere they are walked);
- numbers finite: ``NaN``/``Infinity`` (and ``1e999``, read as infinity) are not JSON and were saved as
  ``null``, so the saved plan no longer ran;
- text, keys included, without surrogate code points (``"\\ud83d"`` alone): they cannot be encoded,
  printed or sent to a service.

``null`` is handled by validation, not here: for a required parameter it is a missing argument; for
an optional one it means "not given" (the executor leaves it out, so the default applies).
"""

from __future__ import annotations

import math
from typing import Any, cast

from planners.quoting import is_valid_text, quoted

MAX_VALUE_DEPTH = 8


def value_problem(value: Any) -> str | None:
    """Why ``value`` may not be an argument value, or None when it may."""
    # An explicit stack: a value built in code may be deeper than the recursion limit.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            if not is_valid_text(item):
                return f"text {quoted(item)} is not valid text (it holds a lone surrogate)"
        elif isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{item!r} is not a finite number (NaN, Infinity and numbers beyond 1e308 are not allowed)"
        elif isinstance(item, (list, tuple, dict)):
            if depth >= MAX_VALUE_DEPTH:
                return f"the value is nested more than {MAX_VALUE_DEPTH} lists/objects deep"
            # A value is untyped JSON: its containers hold anything, which the loop is here to check.
            if isinstance(item, dict):
                for key, inner in cast("dict[Any, Any]", item).items():
                    if not isinstance(key, str) or not is_valid_text(key):
                        return f"key {quoted(key)} is not valid text"
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in cast("list[Any] | tuple[Any, ...]", item))
        else:
            return f"a {type(item).__name__} is not a JSON value (text, number, boolean, null, list or object)"
    return None
