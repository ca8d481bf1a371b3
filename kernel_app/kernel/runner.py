"""Run one function or a chain of them: each output becomes the next function's ``input``."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import FunctionInvocationError, FunctionNotFoundError, KernelAppError
from kernel_app.base.partial_output import parts_to
from kernel_app.base.usage import Usage, collect_usage

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelFunction

    from kernel_app.kernel.plugin_folders.loader import LoadReport


@dataclass
class StepResult:
    function: str
    output: str
    usage: Usage

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "output": self.output, "usage": self.usage.to_dict()}


@dataclass
class RunResult:
    steps: list[StepResult] = field(default_factory=list)

    @property
    def result(self) -> str:
        return self.steps[-1].output if self.steps else ""

    @property
    def usage(self) -> Usage:
        return Usage.total(step.usage for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "usage": self.usage.to_dict(), "steps": [s.to_dict() for s in self.steps]}


def function_names(kernel: Kernel) -> list[str]:
    return sorted(f"{m.plugin_name}.{m.name}" for m in kernel.get_full_list_of_function_metadata())


def resolve_function(kernel: Kernel, name: str, report: LoadReport | None = None) -> KernelFunction:
    """``Plugin.Function`` (case-insensitive) → the kernel's function, or an error that says what exists."""
    plugin, dot, function = name.replace("-", ".").partition(".")
    if not dot or not plugin or not function:
        raise FunctionNotFoundError(f"{name!r} is not of the form Plugin.Function: e.g. BusinessThinking.SWOT")
    wanted = f"{plugin}.{function}".lower()
    known = function_names(kernel)
    for candidate in known:
        if candidate.lower() == wanted:
            plugin_name, _, function_name = candidate.partition(".")
            return kernel.get_function(plugin_name, function_name)
    if report is not None:
        for failed, problem in report.failed.items():
            if failed.lower() == wanted:
                raise FunctionNotFoundError(f"{failed} did not load: {problem}")
        same_plugin = [p for k, p in report.failed.items() if k.lower().startswith(plugin.lower() + ".")]
        if same_plugin:
            raise FunctionNotFoundError(
                f"no function {plugin}.{function}; plugin {plugin} has a problem: {same_plugin[0]}"
            )
    close = difflib.get_close_matches(f"{plugin}.{function}", known, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else "run `kernel-app plugins list` to see what exists"
    raise FunctionNotFoundError(f"no function {plugin}.{function}: {hint}")


async def run_chain(
    kernel: Kernel,
    functions: list[KernelFunction],
    *,
    input: str | None = None,
    variables: Mapping[str, Any] | None = None,
    on_chunk: Callable[[str], None] | None = None,
) -> RunResult:
    """Invoke ``functions`` in order; with ``on_chunk``, prompt functions stream their text to it.

    What the caller gives (``input`` and text ``variables``) and the last output pass the kernel's content
    screen: a flagged one raises :class:`~kernel_app.providers.content_safety.ContentBlockedError`."""
    from semantic_kernel.functions import KernelArguments

    from kernel_app.kernel.screening import require_clean, require_clean_values, screen_of

    screen = screen_of(kernel)
    await require_clean(screen, input or "", "input")
    await require_clean_values(screen, variables or {}, "input")
    run = RunResult()
    current = input
    for index, function in enumerate(functions):
        arguments = KernelArguments(**dict(variables or {}))
        if current is not None:
            arguments["input"] = current
        name = f"{function.plugin_name}.{function.name}"
        try:
            with collect_usage() as collected:  # nested prompt calls (a native SWOT, a planner) count too
                if on_chunk is not None and function.is_prompt:
                    output, streamed = await _stream(kernel, function, arguments, on_chunk)
                else:
                    # Streamed, a native function may send its answer in parts (the SWOT: a table per quadrant).
                    with parts_to(on_chunk) if on_chunk is not None else nullcontext() as parts:
                        result = await kernel.invoke(function, arguments)
                    output, streamed = ("" if result is None else str(result)), Usage()
                    # A native step in a streamed chain shows its output (parts is None when nothing streams).
                    if on_chunk is not None and parts is not None and not parts.sent:
                        on_chunk(output)
            usage = collected.total + streamed
        except KernelAppError:
            raise
        except Exception as exc:
            cause = _root_cause(exc)
            if isinstance(cause, KernelAppError):
                raise cause from exc
            raise FunctionInvocationError(name, cause) from exc
        run.steps.append(StepResult(name, output, usage))
        if on_chunk is not None and index < len(functions) - 1:
            on_chunk("\n")
        current = output
    await require_clean(screen, run.result, "output")
    return run


async def _stream(
    kernel: Kernel, function: KernelFunction, arguments: Any, on_chunk: Callable[[str], None]
) -> tuple[str, Usage]:
    parts: list[str] = []
    usage = Usage()
    async for chunk in kernel.invoke_stream(function, arguments):
        for message in chunk if isinstance(chunk, list) else [chunk]:
            text = str(message) if message is not None else ""
            if text:
                parts.append(text)
                on_chunk(text)
            usage = usage + Usage.from_metadata(getattr(message, "metadata", None))
    return "".join(parts), usage


def _root_cause(exc: BaseException) -> BaseException:
    """semantic-kernel wraps a connector error in two or three layers; the innermost one says what happened."""
    seen = exc
    while seen.__cause__ is not None and seen.__cause__ is not seen:
        if isinstance(seen.__cause__, KernelAppError):
            return seen.__cause__
        seen = seen.__cause__
    if seen is not exc and not str(seen).strip():
        return exc
    return seen
