"""What every built-in native function that asks the model step by step needs (BusinessThinking.SWOT,
ChangeAudience, ShiftDomain, DesignThinking.Ideate): its progress line and the kernel's chat service.

How each asks the model (its prompts, schemas, retries) stays in its own module: those differ on purpose.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from semantic_kernel import Kernel

Progress = Callable[[str], None]


def terminal_progress(line: str) -> None:
    """Progress on stderr, redrawn in place, only for a person at a terminal (not logs or pipes)."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\033[K{line}" if line else "\r\033[K")
        sys.stderr.flush()


def chat_service(kernel: Kernel) -> Any:
    """The kernel's chat service, or None without one (the function's prompt then says so, as it did
    before it was native)."""
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

    try:
        return kernel.get_service(type=ChatCompletionClientBase)
    except Exception:  # semantic-kernel raises its own KernelServiceNotFoundError, among others
        return None
