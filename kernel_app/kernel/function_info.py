"""What a caller (user, CLI, planner) may pass to a function: its parameters minus injected ones."""

from __future__ import annotations

from typing import Any

# semantic-kernel injects these into native functions itself; they are not arguments a user gives.
INJECTED_TYPES = frozenset({"Kernel", "KernelArguments", "AIServiceClientBase", "PromptExecutionSettings"})


def is_injected(parameter: Any) -> bool:
    return parameter.type_ in INJECTED_TYPES or parameter.name in ("kernel", "arguments", "service")


def user_parameters(metadata: Any) -> list[Any]:
    return [p for p in metadata.parameters if not is_injected(p)]


def is_required(parameter: Any) -> bool:
    """Required = marked required and without a usable default (an empty default counts as none)."""
    return bool(parameter.is_required) and parameter.default_value in (None, "")
