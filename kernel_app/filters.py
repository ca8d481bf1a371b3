"""Kernel filters that make semantic-kernel's quiet failures loud."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kernel_app.errors import MissingVariableError
from kernel_app.function_info import is_required, user_parameters

if TYPE_CHECKING:
    from semantic_kernel.filters.functions.function_invocation_context import FunctionInvocationContext


async def require_variables(
    context: FunctionInvocationContext, next: Callable[[FunctionInvocationContext], Awaitable[None]]
) -> None:
    """Refuse to run a function that lacks a required variable.

    semantic-kernel 1.45 renders a missing ``{{$var}}`` as "" even when ``is_required`` is true, so the
    model gets a half-empty prompt and answers something plausible and wrong. A variable is required
    when it is marked required and has no non-empty default (semantic-kernel applies defaults later,
    in ``update_arguments_with_defaults``, so a default counts as given).
    """
    function = context.function
    given = _lower_keys(context.arguments)
    for parameter in user_parameters(function.metadata):
        if parameter.name in context.arguments or parameter.name.lower() in given:
            continue
        if not is_required(parameter):
            if function.is_prompt:
                # Give optional prompt variables their (possibly empty) default explicitly: semantic-kernel
                # skips empty defaults and then logs a "variable not found" warning for each one.
                context.arguments[parameter.name] = parameter.default_value or ""
            continue
        raise MissingVariableError(
            function.fully_qualified_name.replace("-", "."), parameter.name, parameter.description or ""
        )
    await next(context)


def _lower_keys(arguments: object) -> set[str]:
    return {str(k).lower() for k in arguments}  # type: ignore[attr-defined]
