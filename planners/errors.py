"""Typed errors of planning and plan execution.

Every error says what is wrong and where ("step 2 (Writer.Translate): ..."), on one line, so the CLI
can print ``str(error)`` and the planners can hand the same text back to the model in a repair turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from kernel_app.base.errors import KernelAppError, UsageError
from planners.quoting import clean_text, escaped

if TYPE_CHECKING:
    from planners.executor import StepResult


class PlanError(KernelAppError):
    """Base of every planner error. A planning failure is exit code 3."""

    exit_code = 3
    more_problems: tuple[str, ...] = ()  # further problems after the first (a saved plan's), one line each

    def details(self) -> list[str]:
        """The problems after the first, one line each: what a person fixing a saved plan needs."""
        return list(self.more_problems)


# region parsing: the text is not a plan


class PlanParseError(PlanError):
    """A model answer (or a file) could not be read as a plan: no JSON, broken JSON, wrong shape."""


class PlanFormatError(PlanParseError):
    """The JSON was read but is not shaped like a plan (e.g. ``steps`` is not a list)."""


# endregion

# region validation: the plan is readable but wrong


class PlanValidationError(PlanError):
    """A plan that does not fit the catalogue. ``step`` is 1-based (None for the plan as a whole).

    ``validate_plan`` raises the first problem it finds and lists all of them in ``problems`` (the
    first included), so a repair turn can fix every one at once.
    """

    def __init__(self, message: str, *, step: int | None = None, function: str | None = None) -> None:
        self.step = step
        self.function = function
        self.detail = message
        self.problems: list[PlanValidationError] = [self]
        super().__init__(self._located(message))

    def _located(self, message: str) -> str:
        if self.step is None:
            return message
        where = f"step {self.step}" + (f" ({self.function})" if self.function else "")
        return f"{where}: {message}"

    def __str__(self) -> str:
        text = super().__str__()
        more = len(self.problems) - 1
        return text + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")

    def details(self) -> list[str]:
        return [problem.message for problem in self.problems[1:]]

    @property
    def message(self) -> str:
        """This problem alone, with its location (``str()`` also counts the other problems)."""
        return self._located(self.detail)


class EmptyPlanError(PlanValidationError):
    """The plan has no steps."""


class TooManyStepsError(PlanValidationError):
    """The plan has more steps than allowed (a runaway answer)."""


class UnknownFunctionError(PlanValidationError):
    """A step names a function the kernel does not have."""


class ExcludedFunctionError(UnknownFunctionError):
    """A step names a function that exists but is excluded from planning."""


class UnknownArgumentError(PlanValidationError):
    """A step passes an argument the function does not take."""


class MissingArgumentError(PlanValidationError):
    """A step does not pass a required argument."""


class InvalidArgumentValueError(PlanValidationError):
    """An argument value a plan may not hold: too deep, not a finite number, or not valid text."""


class UndefinedReferenceError(PlanValidationError):
    """A ``$name`` argument names neither an earlier step's output nor an input variable."""


class BareReferenceError(UndefinedReferenceError):
    """A model's argument is the bare name of an earlier output (``"input": "poem"``): a ``$`` forgotten."""


class DuplicateOutputError(PlanValidationError):
    """Two steps (or a step and an input variable) use the same output name."""


class InvalidOutputNameError(PlanValidationError):
    """An output name that cannot be referenced as ``$name``."""


# endregion

# region planning


class Attempt(NamedTuple):
    """One model answer and what was wrong with it (None: it was accepted)."""

    answer: str
    error: PlanError | None


class PlanningError(PlanError):
    """The planner gave up: ``attempts`` holds every raw model answer and the error it met."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts: list[Attempt] = list(attempts)
        # Log lines of the planning run, set by the CLI with --debug: reported AFTER the model answers.
        self.debug_log: list[str] = []

    def debug_report(self) -> str:
        """Every raw answer and its error, then the log of the run: what ``--debug`` prints."""
        lines: list[str] = []
        for number, (answer, error) in enumerate(self.attempts, 1):
            lines.append(f"--- answer {number} ---")
            lines.append(clean_text(answer))  # a lone surrogate would make printing it fail
            lines.append(f"--- error {number}: {error if error is not None else 'none'}")
        if self.debug_log:
            lines.append(f"--- log of the run ({len(self.debug_log)} lines) ---")
            lines.extend(self.debug_log)
        return "\n".join(lines)


class NoFunctionFits(PlanningError):
    """The model said that no available function can reach the goal; ``reason`` is its explanation."""

    def __init__(self, reason: str, attempts: Sequence[Attempt] = ()) -> None:
        self.reason = reason
        # The reason is model prose: escaped and cut, so the error stays one bounded line.
        super().__init__(
            f"no function fits the goal: {escaped(reason) if reason else 'the model gave no reason'}", attempts
        )


class RoundLimitError(PlanningError):
    """The function-calling model was still calling functions when its ``max_rounds`` ran out."""

    def __init__(self, max_rounds: int) -> None:
        self.max_rounds = max_rounds
        super().__init__(
            f"the model was still calling functions after the limit of {max_rounds} round(s) "
            "and gave no answer: simplify the goal or allow more rounds"
        )


class PlannerServiceError(PlanningError):
    """The chat service itself failed (HTTP error, no service): not something a repair turn can fix."""


class CatalogueFilterError(UsageError):
    """An ``--exclude``/``--include`` name that matches no plugin or function of the kernel."""


# endregion

# region execution


class PlanRejectedError(PlanError):
    """The approval hook rejected the plan; nothing ran."""

    exit_code = 1


class PlanExecutionError(PlanError):
    """A step failed. ``completed`` maps output names to the results of the steps that finished."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        step: int,
        function: str,
        cause: BaseException | None = None,
        completed: Mapping[str, StepResult] | None = None,
    ) -> None:
        self.step = step
        self.function = function
        self.cause = cause
        self.completed: dict[str, StepResult] = dict(completed or {})
        super().__init__(f"step {step} ({function}) {message}")

    @property
    def outputs(self) -> dict[str, Any]:
        return {name: result.output for name, result in self.completed.items()}


class StepTimeoutError(PlanExecutionError):
    """A step ran longer than the executor's ``step_timeout``."""


# endregion
