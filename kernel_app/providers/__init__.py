"""Model services (providers), chosen by name.

Each provider is a factory ``(Settings) -> ChatCompletionClientBase`` registered here by import path,
so choosing one imports only that provider's dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from kernel_app.base.config import SERVICES, Settings
from kernel_app.base.errors import ConfigError

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

CHAT_PROVIDERS: dict[str, str] = {
    "local": "kernel_app.providers.llama.provider:create_local",
    "openai": "kernel_app.providers.openai_provider:create_openai",
    "azure": "kernel_app.providers.openai_provider:create_azure",
}


def create_chat_service(settings: Settings) -> ChatCompletionClientBase:
    target = CHAT_PROVIDERS.get(settings.service)
    if target is None:
        raise ConfigError(f"unknown service {settings.service!r}: use one of {', '.join(SERVICES)}")
    from kernel_app.providers.model_spans import trace_model_calls

    module_name, _, factory = target.partition(":")
    return trace_model_calls(getattr(importlib.import_module(module_name), factory)(settings))
