"""Regular-expression search with a time limit, for the ``regex`` / ``not-regex`` assertions.

The standard library's ``re`` cannot be interrupted: a pattern with nested repetition over a long answer
(``(\\n.*){4,8}`` once hung ``kernel-app eval`` for ten minutes with no output) backtracks for as long as it
likes. The ``regex`` package (the ``eval`` extra) takes a ``timeout=`` and raises ``TimeoutError`` when it
runs past it, so a pathological pattern fails its assertion instead of stalling the whole run.
"""

from __future__ import annotations

import importlib.util
from typing import Any

# Seconds one search may take: an ordinary pattern over a model's answer needs microseconds, so this only
# ever stops a runaway one, and stops it long before a person would wonder whether the run is stuck.
TIME_LIMIT_S = 0.25

INSTALL = "pip install 'kernel-app[eval]'"


class RegexTimedOut(Exception):
    """The search ran past its time limit (the message names the pattern and the limit)."""


def missing_package() -> str | None:
    """The one-line error when the ``regex`` package is not installed, or None when it is."""
    if importlib.util.find_spec("regex") is not None:
        return None
    return f"regex needs the regex package (a time limit on each search), from the [eval] extra: {INSTALL}"


def compile_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a regular expression the search accepts, or None when it is one."""
    import regex

    try:
        regex.compile(pattern)
    except regex.error as exc:
        return str(exc)
    return None


def search(pattern: str, text: str, limit_s: float = TIME_LIMIT_S) -> bool:
    """Whether ``pattern`` matches anywhere in ``text``; raises :class:`RegexTimedOut` past ``limit_s``."""
    import regex

    try:
        found: Any = regex.search(pattern, text, timeout=limit_s)
    except TimeoutError:
        raise RegexTimedOut(
            f"pattern {pattern!r} ran past the {limit_s:g} s limit (catastrophic backtracking?); "
            "simplify its nested repetition"
        ) from None
    return found is not None
