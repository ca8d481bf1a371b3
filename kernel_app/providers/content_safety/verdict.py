"""What a content screen says about a text, and the errors a screen raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kernel_app.base.errors import KernelAppError

# Where a text was screened: what a user sent, a document being uploaded, a memory record or function
# result on its way into a prompt, and the answer.
Stage = Literal["input", "document", "retrieved", "tool_result", "output"]
STAGES: tuple[str, ...] = ("input", "document", "retrieved", "tool_result", "output")


@dataclass(frozen=True)
class Verdict:
    """``flagged`` texts are blocked; ``category`` is a short name (prompt_injection, hidden_text, harmful,
    or the hosted service's own, e.g. violence), ``reason`` one line a person can act on."""

    flagged: bool = False
    category: str = ""
    reason: str = ""


CLEAN = Verdict()


class ContentBlockedError(KernelAppError):
    """A text was blocked by the content screen where no event can carry it (a function run directly)."""

    def __init__(self, stage: str, verdict: Verdict) -> None:
        self.stage = stage
        self.verdict = verdict
        super().__init__(refusal(stage, verdict))


class ScreenError(KernelAppError):
    """The hosted screen could not answer. Screening fails closed: nothing unscreened goes on."""


def refusal(stage: str, verdict: Verdict) -> str:
    """The one line a user sees in place of what was blocked."""
    what = {
        "input": "Your message was blocked",
        "document": "The document was refused",
        "retrieved": "A retrieved text was withheld",
        "tool_result": "A function's result was withheld",
        "output": "The answer was withheld",
    }.get(stage, "Blocked")
    return f"{what} by the content safety screen ({verdict.category}): {verdict.reason}"
