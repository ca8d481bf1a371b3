"""Model text inside our messages: quoted escaped and shortened, so every error stays one bounded line.

A model can name a function ``"a\\nb"`` or 100 KB long, or send a lone surrogate (``"\\ud83d"``) that
no encoder accepts. Every piece of model text that an error message, a repair prompt or the terminal
shows goes through :func:`quoted` (or :func:`clean_text` for text sent back to a service whole).
"""

from __future__ import annotations

import re

MAX_QUOTED = 80  # characters of model text quoted in a message
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD: encodable as UTF-8, safe to send or print."""
    if not _SURROGATE.search(text):
        return text
    # Through UTF-16 with surrogatepass, a valid pair becomes one character again; a lone one becomes U+FFFD.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def is_valid_text(text: str) -> bool:
    """False when ``text`` holds surrogate code points (a lone ``\\ud83d``): not encodable as UTF-8."""
    return _SURROGATE.search(text) is None


def shortened(text: str, limit: int = MAX_QUOTED) -> str:
    """At most ``limit`` characters, with ``...`` and the full length when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def quoted(value: object, limit: int = MAX_QUOTED) -> str:
    """``'text'`` escaped the way Python's repr escapes it (newlines, control characters, lone surrogates
    as ``\\n``, ``\\x00``, ``\\ud83d``), cut at ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def escaped(text: str, limit: int = 200) -> str:
    """Like :func:`quoted` without the quotes: for prose such as a model's reason, kept on one line."""
    cut = text if len(text) <= limit else text[:limit]
    inner = repr(cut)[1:-1]
    return inner if len(text) <= limit else f"{inner}... ({len(text)} characters)"
