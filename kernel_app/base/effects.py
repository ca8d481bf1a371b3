"""What running a function does to the world, and so whether it may run without the user's approval.

Three kinds, decided per function:

- ``READ``: reads or computes only (arithmetic, the clock, text helpers, memory recall/ask). Runs freely.
- ``MODEL``: a prompt function: it calls the model and costs tokens, but changes nothing outside.
- ``WRITE``: changes something or reaches out (``memory.save``, files, HTTP, any native function whose
  author did not declare it read-only). Never runs without approval.

A native function declares itself read-only with :func:`read_only` (or semantic-kernel metadata
``additional_properties={"read_only": True}``); undeclared native functions count as ``WRITE``, because
Python in a plugin folder can do anything. The caller (planner, conversation engine) decides what each
kind needs; :func:`needs_approval` is the default rule: everything but ``READ`` asks.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

READ_ONLY_ATTRIBUTE = "__kernel_app_read_only__"
USES_MODEL_ATTRIBUTE = "__kernel_app_uses_model__"


class Effect(enum.Enum):
    READ = "read"
    MODEL = "model"
    WRITE = "write"


# Functions of semantic-kernel's core plugins and of our memory plugin, keyed "plugin.function" in lower
# case; "plugin.*" covers the whole plugin. Applied only to code from _KNOWN_SOURCES: a plugin folder that
# happens to be called "Text" or "memory" is someone else's Python and must declare itself.
KNOWN_EFFECTS: dict[str, Effect] = {
    "memory.recall": Effect.READ,
    "memory.ask": Effect.MODEL,
    "memory.save": Effect.WRITE,
    "textmemoryplugin.recall": Effect.READ,  # Semantic Kernel's names on our memory (kernel/memory_plugin.py)
    "textmemoryplugin.save": Effect.WRITE,
    "time.*": Effect.READ,
    "math.*": Effect.READ,
    "text.*": Effect.READ,
    "wait.*": Effect.READ,
    "conversationsummaryplugin.*": Effect.MODEL,
    "http.*": Effect.WRITE,
}


_KNOWN_SOURCES = ("semantic_kernel.core_plugins.", "kernel_app.")


def read_only(function: F) -> F:
    """Mark a native ``@kernel_function`` as reading or computing only (put it above ``@kernel_function``)."""
    setattr(function, READ_ONLY_ATTRIBUTE, True)
    return function


def uses_model(function: F) -> F:
    """Mark a native ``@kernel_function`` whose only effect is calling the model (it costs tokens, changes
    nothing outside), like a prompt function (put it above ``@kernel_function``)."""
    setattr(function, USES_MODEL_ATTRIBUTE, True)
    return function


def effect_of(function: Any) -> Effect:
    """The effect of a semantic-kernel ``KernelFunction`` (prompt or native)."""
    metadata = function.metadata
    if metadata.is_prompt:
        return Effect.MODEL
    method = getattr(function, "method", None)
    if (getattr(method, "__module__", None) or "").startswith(_KNOWN_SOURCES):
        known = _known(metadata.plugin_name or "", metadata.name)
        if known is not None:
            return known
    declared = (metadata.additional_properties or {}).get("read_only")
    if declared is True or getattr(method, READ_ONLY_ATTRIBUTE, False):
        return Effect.READ
    if getattr(method, USES_MODEL_ATTRIBUTE, False):
        return Effect.MODEL
    return Effect.WRITE


def needs_approval(function: Any) -> bool:
    """The default rule: anything that is not read-only asks first."""
    return effect_of(function) is not Effect.READ


def _known(plugin: str, name: str) -> Effect | None:
    plugin, name = plugin.lower(), name.lower()
    return KNOWN_EFFECTS.get(f"{plugin}.{name}") or KNOWN_EFFECTS.get(f"{plugin}.*")
