"""Token usage, summed across calls; semantic-kernel reports it only in response metadata."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "calls": self.calls,
        }

    @classmethod
    def total(cls, usages: Any) -> Usage:
        """The sum of an iterable of Usage (e.g. the steps of a run or a plan)."""
        result = cls()
        for usage in usages:
            result = result + usage
        return result

    @classmethod
    def from_metadata(cls, metadata: Any) -> Usage:
        """Read ``usage`` from a completion's metadata (semantic-kernel's or OpenAI's CompletionUsage)."""
        usage = metadata.get("usage") if isinstance(metadata, dict) else None
        if usage is None:
            return cls()
        return cls(
            int(getattr(usage, "prompt_tokens", 0) or 0),
            int(getattr(usage, "completion_tokens", 0) or 0),
            1,
        )

    @classmethod
    def from_function_result(cls, result: Any) -> Usage:
        """Sum the usage of every completion behind a ``FunctionResult`` (none for native functions)."""
        total = cls()
        metadata = getattr(result, "metadata", None) or {}
        for item in metadata.get("metadata", []) or []:
            total = total + cls.from_metadata(item)
        return total


class UsageCollector:
    """Sums the usage of every prompt-function call made while it is active, nested calls included."""

    def __init__(self) -> None:
        self.total = Usage()

    def add(self, usage: Usage) -> None:
        self.total = self.total + usage


_active: ContextVar[UsageCollector | None] = ContextVar("kernel_app_usage", default=None)


@contextmanager
def collect_usage() -> Iterator[UsageCollector]:
    collector = UsageCollector()
    token = _active.set(collector)
    try:
        yield collector
    finally:
        _active.reset(token)


def report_usage(usage: Usage) -> None:
    """Add usage a caller measured itself (a streamed nested call: its usage is only in the chunks, which
    the record_usage filter does not see) to the active collector, if any."""
    collector = _active.get()
    if collector is not None:
        collector.add(usage)


async def record_usage(context: Any, next: Callable[[Any], Awaitable[None]]) -> None:
    """Kernel filter: report each prompt function's usage to the active collector.

    A native function that calls prompt functions (BusinessThinking.SWOT, planners) returns a plain
    value, so usage read from the outer result alone would be lost; the filter sees every call.
    """
    await next(context)
    collector = _active.get()
    if collector is not None and context.function.is_prompt and context.result is not None:
        collector.add(Usage.from_function_result(context.result))
