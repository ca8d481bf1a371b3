"""semantic-kernel's core plugins that templates written for Semantic Kernel call by name.

``{{MathPlugin.Add $x amount='2'}}``, ``{{TextPlugin.uppercase $input}}``, ``{{WaitPlugin.wait '1'}}``: samples
call the core plugins a Semantic Kernel application registers. These are semantic-kernel's own classes, with
the .NET names samples also use added beside them (.NET's ``TextPlugin`` has ``TrimStart``, ``Length``,
``Concat``, ``Echo``; its ``WaitPlugin`` waits in ``Seconds``). They serve templates only: the kernel finds
them when a template calls them (``AppKernel.template_plugins``), but they are not plugins of the kernel, so
the model is never offered them as tools (our ``Math`` and ``Text`` do that job, with their own names) and
``plugins list`` does not show them. ``plugins/README.md`` lists each mapping with its arguments.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from semantic_kernel.core_plugins import MathPlugin as CoreMathPlugin
from semantic_kernel.core_plugins import TextPlugin as CoreTextPlugin
from semantic_kernel.core_plugins.wait_plugin import WaitPlugin as CoreWaitPlugin
from semantic_kernel.functions import kernel_function

from kernel_app.base.errors import UsageError

if TYPE_CHECKING:
    from semantic_kernel.functions import KernelPlugin

# A template that waits only makes its answer later; more than this is a mistake, not a pause.
MAX_WAIT_SECONDS = 10.0


class MathPlugin(CoreMathPlugin):
    """semantic-kernel's ``MathPlugin`` (``Add``, ``Subtract``: ``input`` and ``amount``), with ``Multiply`` and
    ``Divide`` in the same shape. Results are floats, as semantic-kernel returns them (``3.0``)."""

    @kernel_function(name="Multiply")
    def multiply(
        self,
        input: Annotated[int | float | str, "The first number to multiply"],
        amount: Annotated[int | float | str, "The second number to multiply"],
    ) -> Annotated[float, "The result"]:
        """Returns the product of the values provided."""
        return self._parse_number(input) * self._parse_number(amount)

    @kernel_function(name="Divide")
    def divide(
        self,
        input: Annotated[int | float | str, "The number to divide"],
        amount: Annotated[int | float | str, "The number to divide by"],
    ) -> Annotated[float, "The result"]:
        """Returns the quotient of the values provided."""
        divisor = self._parse_number(amount)
        if divisor == 0:
            raise UsageError("MathPlugin.Divide: cannot divide by zero (amount is 0)")
        return self._parse_number(input) / divisor


class TextPlugin(CoreTextPlugin):
    """semantic-kernel's ``TextPlugin`` (``trim``, ``trim_start``, ``trim_end``, ``uppercase``, ``lowercase``)
    and .NET's names for the same and its other functions (``trimStart``, ``trimEnd``, ``length``, ``concat``,
    ``echo``)."""

    @kernel_function(name="trimStart", description="Trim whitespace from the start of a string.")
    def trim_start_net(self, input: str) -> str:
        return self.trim_start(input)

    @kernel_function(name="trimEnd", description="Trim whitespace from the end of a string.")
    def trim_end_net(self, input: str) -> str:
        return self.trim_end(input)

    @kernel_function(description="The number of characters in a string.")
    def length(self, input: str) -> str:
        return str(len(input))

    @kernel_function(description="Concatenate two strings.")
    def concat(self, input: str, input2: str = "") -> str:
        return input + input2

    @kernel_function(description="The string as it is.")
    def echo(self, input: str) -> str:
        return input


class WaitPlugin(CoreWaitPlugin):
    """semantic-kernel's ``WaitPlugin.wait`` (and .NET's ``seconds``), at most ``MAX_WAIT_SECONDS``."""

    @kernel_function(name="wait", description="Wait for a number of seconds.")
    async def wait(self, input: Annotated[float | str, "The number of seconds to wait"]) -> None:
        await super().wait(_seconds(input, "wait"))

    @kernel_function(name="seconds", description="Wait for a number of seconds.")
    async def seconds(self, input: Annotated[float | str, "The number of seconds to wait"]) -> None:
        await super().wait(_seconds(input, "seconds"))


def _seconds(value: Any, function: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"WaitPlugin.{function}: {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or abs(seconds) > MAX_WAIT_SECONDS:
        raise UsageError(
            f"WaitPlugin.{function}: {value} seconds is more than a template may wait"
            f" (at most {MAX_WAIT_SECONDS:g}): wait less"
        )
    return seconds


def template_plugins() -> dict[str, KernelPlugin]:
    """The core plugins templates may call, by the names Semantic Kernel registers them with in samples."""
    from semantic_kernel.functions import KernelPlugin

    plugins = {"MathPlugin": MathPlugin(), "TextPlugin": TextPlugin(), "WaitPlugin": WaitPlugin()}
    return {name: KernelPlugin.from_object(name, plugin) for name, plugin in plugins.items()}
