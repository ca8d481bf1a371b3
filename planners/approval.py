"""Approval of the function calls a model makes by itself (function calling), as a plain callback.

The rule, from :mod:`kernel_app.base.effects`: a ``READ`` function (arithmetic, the clock, text helpers,
memory recall) runs without asking; a ``MODEL`` function (a prompt function: it costs tokens) and a
``WRITE`` function (``memory.save``, any native function not declared read-only) run only when the
``approve_call`` callback says yes. Without a callback, nothing with an effect runs: the call is
answered to the model with :data:`NOT_APPROVED`, so it can still answer with what it has.

The callback lives in the core, not in the terminal: the CLI prompts a person, a server or the
conversation engine can decide differently with the same hook.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kernel_app.base.effects import Effect
from planners.quoting import clean_text, quoted

NOT_APPROVED = "not run: needs approval"


@dataclass(frozen=True)
class CallRequest:
    """One call the model asked for, before it runs."""

    function: str  # Plugin.Function
    args: dict[str, Any] = field(default_factory=dict)
    effect: Effect = Effect.WRITE
    round: int = 0  # 0-based model round trip

    def call_text(self, limit: int = 60) -> str:
        """``Writer.Translate(input="...", language="French")``, each value escaped and shortened."""
        return f"{self.function}({format_args(self.args, limit)})"


# Called for each MODEL or WRITE call: True runs it; anything else refuses it. May be async.
ApproveCall = Callable[[CallRequest], "bool | Awaitable[bool]"]


async def is_approved(request: CallRequest, approve_call: ApproveCall | None) -> bool:
    """The rule above: READ runs; the rest only on an explicit True from ``approve_call``."""
    if request.effect is Effect.READ:
        return True
    if approve_call is None:
        return False
    decision = approve_call(request)
    if inspect.isawaitable(decision):
        decision = await decision
    return decision is True


def format_args(args: dict[str, Any], limit: int = 60) -> str:
    """``name=value, ...`` on one line: model values can hold newlines or be 100 KB long."""
    parts: list[str] = []
    for key, value in args.items():
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=True)
        except (TypeError, ValueError, RecursionError):  # not JSON (or too deep): say what it is
            text = type(value).__name__
        text = clean_text(text)
        if len(text) > limit:
            text = text[:limit] + "..."
        parts.append(f"{quoted(key, 40)[1:-1]}={text}")
    return ", ".join(parts)
