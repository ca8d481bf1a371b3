"""Blocks that happen deep inside a function call (the memory plugin dropping a flagged record) reach
the conversation engine here, the way usage does (``kernel_app.base.usage``): the engine collects while
it runs a function and turns each report into a ``ContentBlocked`` event."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from kernel_app.providers.content_safety.verdict import Verdict


@dataclass(frozen=True)
class BlockReport:
    stage: str
    verdict: Verdict


_active: ContextVar[list[BlockReport] | None] = ContextVar("kernel_app_blocks", default=None)


@contextmanager
def collect_blocks() -> Iterator[list[BlockReport]]:
    """Gather what is reported blocked while the block runs (nested function calls included)."""
    reports: list[BlockReport] = []
    token = _active.set(reports)
    try:
        yield reports
    finally:
        _active.reset(token)


def report_blocked(stage: str, verdict: Verdict) -> None:
    """Tell the active collector, if any, that something was blocked (no collector: nothing to tell)."""
    reports = _active.get()
    if reports is not None:
        reports.append(BlockReport(stage, verdict))
