"""Test spies on a semantic-kernel Kernel."""

from __future__ import annotations

from typing import Any


def count_invocations(kernel: Any) -> list[str]:
    """A list that fills with every function the kernel actually invokes, as ``Plugin.Function``.

    A function-invocation filter sees each real call, so a test can prove that a function outside the
    catalogue never ran, whatever the planner or the model claimed.
    """
    invoked: list[str] = []

    async def counter(context: Any, next: Any) -> None:
        invoked.append(context.function.fully_qualified_name.replace("-", "."))
        await next(context)

    kernel.add_filter("function_invocation", counter)
    return invoked
