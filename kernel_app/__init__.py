"""Kernel App: a plugin-orchestration engine on semantic-kernel.

The Python API (docs/python-api.md) is importable from here: ``from kernel_app import build_kernel``.
Names load on first use (PEP 562), so ``import kernel_app`` stays light: ``kernel-app --help`` must not
pay for semantic-kernel (~1.7 s). Importing it changes nothing else in the process: the command line, not
this package, installs the recorded parse of pybars' grammars (kernel_app/kernel/pybars_grammars.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_API = {
    "Settings": "kernel_app.base.config",
    "load_settings": "kernel_app.base.config",
    "build_kernel": "kernel_app.kernel.builder",
    "BuiltKernel": "kernel_app.kernel.builder",
    "resolve_function": "kernel_app.kernel.runner",
    "run_chain": "kernel_app.kernel.runner",
    "ScriptedChatCompletion": "kernel_app.providers.scripted",
    "call": "kernel_app.providers.scripted",
    "ConversationEngine": "kernel_app.conversation",
    "ConversationStore": "kernel_app.conversation",
    "ApprovalNeeded": "kernel_app.conversation",
    "Done": "kernel_app.conversation",
    "ErrorEvent": "kernel_app.conversation",
    "FunctionCallFinished": "kernel_app.conversation",
    "FunctionCallStarted": "kernel_app.conversation",
    "TextDelta": "kernel_app.conversation",
    "create_app": "kernel_app.interfaces.server",  # the [serve] extra: without it, an ImportError says so
    "KernelAppError": "kernel_app.base.errors",
    "SequentialPlanner": "planners",
    "ActionPlanner": "planners",
    "FunctionCallingPlanner": "planners",
    "PlanExecutor": "planners",
    "Plan": "planners",
    "MemoryStore": "memories",
}

# Spelled out, not sorted(_API), so that type checkers and editors see the public names and their types;
# tests/test_public_api.py keeps the two equal.
__all__ = [
    "ActionPlanner",
    "ApprovalNeeded",
    "BuiltKernel",
    "ConversationEngine",
    "ConversationStore",
    "Done",
    "ErrorEvent",
    "FunctionCallFinished",
    "FunctionCallStarted",
    "FunctionCallingPlanner",
    "KernelAppError",
    "MemoryStore",
    "Plan",
    "PlanExecutor",
    "ScriptedChatCompletion",
    "SequentialPlanner",
    "Settings",
    "TextDelta",
    "build_kernel",
    "call",
    "create_app",
    "load_settings",
    "resolve_function",
    "run_chain",
]

if TYPE_CHECKING:  # the real imports for type checkers; at run time each name loads on first use
    from kernel_app.base.config import Settings, load_settings
    from kernel_app.base.errors import KernelAppError
    from kernel_app.conversation import (
        ApprovalNeeded,
        ConversationEngine,
        ConversationStore,
        Done,
        ErrorEvent,
        FunctionCallFinished,
        FunctionCallStarted,
        TextDelta,
    )
    from kernel_app.interfaces.server import create_app
    from kernel_app.kernel.builder import BuiltKernel, build_kernel
    from kernel_app.kernel.runner import resolve_function, run_chain
    from kernel_app.providers.scripted import ScriptedChatCompletion, call
    from memories import MemoryStore
    from planners import ActionPlanner, FunctionCallingPlanner, Plan, PlanExecutor, SequentialPlanner


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'kernel_app' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
