"""Content safety: the screens that check what users send, documents, retrieved records and answers.

Chosen by the ``content_safety`` setting like a model service: ``offline`` (the default: built in, no
network), ``openai`` (the moderation endpoint), ``azure`` (Azure AI Content Safety and Prompt Shields) or
``off``. Each is a factory ``(Settings) -> Screen`` registered here by import path, so choosing one
imports only its own dependencies. See docs/content-safety.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from kernel_app.base.constants import CONTENT_SAFETY_SCREENS
from kernel_app.base.errors import ConfigError
from kernel_app.providers.content_safety.base import Screen
from kernel_app.providers.content_safety.fence import data_rule, fence, new_boundary
from kernel_app.providers.content_safety.reports import BlockReport, collect_blocks, report_blocked
from kernel_app.providers.content_safety.verdict import (
    CLEAN,
    STAGES,
    ContentBlockedError,
    ScreenError,
    Stage,
    Verdict,
    refusal,
)

if TYPE_CHECKING:
    from kernel_app.base.config import Settings

SCREENS: dict[str, str | None] = {
    "offline": "kernel_app.providers.content_safety.offline:OfflineScreen",
    "openai": "kernel_app.providers.content_safety.openai_screen:create_openai_screen",
    "azure": "kernel_app.providers.content_safety.azure_screen:create_azure_screen",
    "off": None,
}


def create_screen(settings: Settings) -> Screen | None:
    """The configured screen; None when ``content_safety`` is ``off``."""
    name = settings.content_safety
    if name not in SCREENS:
        raise ConfigError(f"unknown content_safety {name!r}: use one of {', '.join(CONTENT_SAFETY_SCREENS)}")
    target = SCREENS[name]
    if target is None:
        return None
    module_name, _, factory = target.partition(":")
    made = getattr(importlib.import_module(module_name), factory)
    return made() if name == "offline" else made(settings)


__all__ = [
    "CLEAN",
    "SCREENS",
    "STAGES",
    "BlockReport",
    "ContentBlockedError",
    "Screen",
    "ScreenError",
    "Stage",
    "Verdict",
    "collect_blocks",
    "create_screen",
    "data_rule",
    "fence",
    "new_boundary",
    "refusal",
    "report_blocked",
]
