"""Which built-in functions may run without approval (kernel_app.base.effects), checked on the real kernel."""

from __future__ import annotations

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.effects import Effect, effect_of
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion


@pytest.fixture(scope="module")
def kernel():
    return build_kernel(Settings(), chat_service=ScriptedChatCompletion()).kernel


@pytest.mark.parametrize(
    ("plugin", "function", "effect"),
    [
        ("BusinessThinking", "SWOT", Effect.MODEL),  # native, but its only effect is calling the model
        ("Writer", "Summarize", Effect.MODEL),
        ("Math", "add", Effect.READ),
        ("Time", "today", Effect.READ),
        ("Time", "dayOfWeek", Effect.READ),  # inherited from semantic-kernel's core TimePlugin
        ("memory", "recall", Effect.READ),
        ("memory", "save", Effect.WRITE),
        ("TextMemoryPlugin", "recall", Effect.READ),
        ("TextMemoryPlugin", "save", Effect.WRITE),
        ("ConversationSummaryPlugin", "SummarizeConversation", Effect.MODEL),
    ],
)
def test_builtin_effects(kernel, plugin: str, function: str, effect: Effect) -> None:
    assert effect_of(kernel.get_function(plugin, function)) is effect
