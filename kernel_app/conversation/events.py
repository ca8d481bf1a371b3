"""The engine's typed events: what every surface (REPL, HTTP, OpenAI-compatible, MCP, Teams...) renders.

Each event has a ``type`` (its wire name) and ``to_dict()`` (what the HTTP API sends as an SSE
frame). Surfaces render them; none runs the loop itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kernel_app.base.usage import Usage


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            data[item.name] = value.to_dict() if isinstance(value, Usage) else value
        return data


@dataclass(frozen=True)
class TextDelta(Event):
    """A piece of the answer as the model generates it."""

    type: ClassVar[str] = "text_delta"
    text: str


@dataclass(frozen=True)
class FunctionCallStarted(Event):
    type: ClassVar[str] = "function_call_started"
    call_id: str
    function: str  # Plugin.Function
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionCallFinished(Event):
    """``ok`` is False when the function failed, was refused or was not approved; ``result`` says why."""

    type: ClassVar[str] = "function_call_finished"
    call_id: str
    function: str
    arguments: dict[str, Any] = field(default_factory=dict)
    result: str = ""  # a summary: at most SUMMARY_CHARS characters
    ok: bool = True
    seconds: float = 0.0


@dataclass(frozen=True)
class ApprovalNeeded(Event):
    """The model wants to run a function with an effect; the engine waits for the surface's answer."""

    type: ClassVar[str] = "approval_needed"
    approval_id: str
    call_id: str
    function: str
    arguments: dict[str, Any] = field(default_factory=dict)
    effect: str = "write"  # kernel_app.base.effects.Effect value

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{self.function}({args})"


@dataclass(frozen=True)
class PlanProposed(Event):
    type: ClassVar[str] = "plan_proposed"
    plan_id: str
    text: str
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Progress(Event):
    """Something slow began (``done`` False) or ended: planning, a plan step, a memory question, a function.

    For a status line; ``text`` is one short line, e.g. "step 1/3 BusinessThinking.SWOT"."""

    type: ClassVar[str] = "progress"
    stage: str  # planning, step, ask, run, save
    text: str
    done: bool = False


@dataclass(frozen=True)
class PlanStepStarted(Event):
    """An approved plan's step began (the plan executor's ``on_step("started", ...)``); ``text`` is the
    status line, e.g. "step 2 of 3: BusinessThinking.SWOT". Steps that read nothing of each other may run
    at once, so two may be running."""

    type: ClassVar[str] = "plan_step_started"
    plan_id: str
    step: int  # from 1, in plan order
    total: int
    function: str
    output_name: str
    text: str = ""

    @classmethod
    def of(cls, plan_id: str, step: int, total: int, function: str, output_name: str) -> PlanStepStarted:
        return cls(plan_id, step, total, function, output_name, step_line(step, total, function))

    def kept(self) -> dict[str, Any]:
        """What a plan's record keeps of the step while it runs (a page opened meanwhile shows it)."""
        return {"step": self.step, "function": self.function, "output_name": self.output_name, "status": "running"}


@dataclass(frozen=True)
class PlanStepFinished(Event):
    """A plan's step ended: ``output`` is its result (markdown, as the function wrote it); a failed step
    has ``ok`` False and ``error`` one line, and the plan stops there."""

    type: ClassVar[str] = "plan_step_finished"
    plan_id: str
    step: int
    total: int
    function: str
    output_name: str
    output: str = ""
    seconds: float = 0.0
    ok: bool = True
    error: str = ""

    def kept(self) -> dict[str, Any]:
        """What a plan's record keeps of the step (a page shows it again, during the run or after it)."""
        data = self.to_dict()
        for name in ("type", "plan_id", "total"):
            data.pop(name)
        return {**data, "status": "done" if self.ok else "failed"}


def step_line(step: int, total: int, function: str) -> str:
    """The one status line for a running step that every surface shows."""
    return f"step {step} of {total}: {function}"


@dataclass(frozen=True)
class ContentBlocked(Event):
    """The content screen blocked something (docs/content-safety.md). ``stage``: ``input`` (the user's
    message: the turn ends here, with ``Done`` whose ``finish_reason`` is ``content_filter``, and nothing is
    stored), ``retrieved`` (a memory record left out of a recall), ``tool_result`` (a function's result
    withheld from the model), ``output`` (the answer replaced by a refusal). ``category`` is the screen's
    (prompt_injection, hidden_text, harmful, or the hosted service's), ``reason`` one line."""

    type: ClassVar[str] = "content_blocked"
    stage: str
    category: str
    reason: str

    def describe(self) -> str:
        """One line for a person: what was blocked and why."""
        what = {
            "input": "message blocked",
            "document": "document refused",
            "retrieved": "retrieved text withheld",
            "tool_result": "function result withheld",
            "output": "answer withheld",
        }.get(self.stage, "blocked")
        return f"content safety: {what} ({self.category}): {self.reason}"


@dataclass(frozen=True)
class ErrorEvent(Event):
    """The turn failed (a model or plugin failure); one line, never a traceback. ``Done`` does not follow."""

    type: ClassVar[str] = "error"
    message: str


@dataclass(frozen=True)
class Done(Event):
    """The turn is over and stored: ``text`` is the whole answer."""

    type: ClassVar[str] = "done"
    conversation_id: str
    text: str
    usage: Usage = field(default_factory=Usage)
    # stop, length (cut at max_tokens), cancelled, content_filter (the content screen blocked the message
    # or the answer: ``text`` is the refusal; a blocked message leaves nothing stored)
    finish_reason: str = "stop"
