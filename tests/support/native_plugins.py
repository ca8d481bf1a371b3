"""Helpers for the tests of the built-in native plugins (BusinessThinking.SWOT, ChangeAudience, ShiftDomain,
DesignThinking.Ideate): their module loaded from its file, a scripted service with structured output, and
whether an embedded tier can run for their ``local_model`` smoke tests."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from kernel_app.base.paths import builtin_plugins_dir
from kernel_app.providers.llama.cache import is_verified, parts_installed
from kernel_app.providers.llama.tiers import ModelTier
from kernel_app.providers.scripted import ScriptedChatCompletion


def load_plugin_module(relative_path: str, module_name: str) -> ModuleType:
    """A built-in plugin's module (``"BusinessThinking/swot_plugin.py"``), loaded from its file as the plugin
    loader does: a plugin folder is not a Python package. ``module_name`` keeps two loads apart."""
    spec = importlib.util.spec_from_file_location(module_name, builtin_plugins_dir() / relative_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StructuredScripted(ScriptedChatCompletion):
    """The scripted service with OpenAI's settings class, so a native plugin sees a service with structured
    output and takes its JSON path."""

    def get_prompt_execution_settings_class(self) -> type:
        from semantic_kernel.connectors.ai.open_ai import OpenAIChatPromptExecutionSettings

        return OpenAIChatPromptExecutionSettings


def tier_runnable(tier: ModelTier) -> bool:
    """Whether llama.cpp's binding and ``tier``'s model are installed, so a ``local_model`` test can run."""
    return importlib.util.find_spec("xllamacpp") is not None and (parts_installed(tier) or is_verified(tier))


def local_model_marks(tier: ModelTier) -> list[pytest.MarkDecorator]:
    """A module's ``pytestmark`` for tests that run ``tier`` for real: ``local_model`` and ``e2e``, and
    skipped (with the command that installs it) where that tier is not installed."""
    return [
        pytest.mark.local_model,
        pytest.mark.e2e,
        pytest.mark.skipif(not tier_runnable(tier), reason=f"{tier.name} not installed: {tier.install_command}"),
    ]
