"""Typed errors of Kernel App.

Every error a user can meet derives from :class:`KernelAppError`; the CLI prints ``str(error)`` on one
line and exits with ``exit_code``. Errors that come from a model keep the raw model output so that
callers (and ``--debug``) can show exactly what the model said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


class KernelAppError(Exception):
    """Base class: a problem the user can act on."""

    exit_code: int = 1


class ConfigError(KernelAppError):
    """Configuration is missing or wrong (a variable to set, a bad config file)."""

    exit_code = 2


class UsageError(KernelAppError):
    """The command line or the call names something that does not exist or is malformed."""

    exit_code = 2


class DependencyMissingError(KernelAppError):
    """An optional dependency (extra) is not installed."""


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding of the plugin loader: where, what is wrong, what to do."""

    path: str
    message: str
    hint: str
    severity: Severity = "error"
    line: int | None = None
    column: int | None = None

    def location(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.location()}: {prefix}{self.message}: {self.hint}"


@dataclass
class PluginLoadError(KernelAppError):
    """One or more plugin folders could not be loaded; ``problems`` lists each one."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"]
        first = str(errors[0]) if errors else "plugin problems"
        more = f" (and {len(errors) - 1} more problem(s); run `kernel-app plugins lint`)" if len(errors) > 1 else ""
        return first + more


class FunctionNotFoundError(UsageError):
    """A `Plugin.Function` name that the kernel does not have."""


class MissingVariableError(UsageError):
    """A prompt function was invoked without one of its required variables."""

    def __init__(self, function: str, variable: str, description: str = "") -> None:
        self.function = function
        self.variable = variable
        about = f" ({description})" if description else ""
        # The message is the same on every surface (a model calling the function over HTTP reads it
        # too); how to pass the variable is the interface's to say: see ``cli_hint``.
        super().__init__(f"{function}: missing required variable '{variable}'{about}")

    @property
    def cli_hint(self) -> str:
        """How to pass the variable on the command line."""
        return f"pass it with --var {self.variable}=VALUE" + (" or --input / stdin" if self.variable == "input" else "")


class ModelError(KernelAppError):
    """The model service failed or answered something unusable; ``raw_output`` keeps its answer."""

    def __init__(self, message: str, raw_output: str | None = None) -> None:
        super().__init__(message)
        self.raw_output = raw_output


class FunctionInvocationError(KernelAppError):
    """A function failed while running; names the function and keeps the underlying cause."""

    def __init__(self, function: str, cause: BaseException) -> None:
        self.function = function
        self.cause = cause
        super().__init__(f"{function} failed: {_one_line(cause)}")


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    # Chained semantic-kernel errors repeat themselves over several lines; the first line says it.
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def innermost_message(error: BaseException) -> str:
    """The first line of the innermost cause: semantic-kernel wraps a client's error two or three times."""
    seen = error
    while seen.__cause__ is not None and seen.__cause__ is not seen:
        seen = seen.__cause__
    text = str(seen).strip() or str(error).strip() or type(error).__name__
    return text.splitlines()[0]
