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
    """The configured service; its calls go to the call log unless ``call_log`` is off (every surface gets
    its service here, so every model call is logged whichever surface made it)."""
    target = CHAT_PROVIDERS.get(settings.service)
    if target is None:
        raise ConfigError(f"unknown service {settings.service!r}: use one of {', '.join(SERVICES)}")
    from kernel_app.providers.model_spans import trace_model_calls

    module_name, _, factory = target.partition(":")
    service = getattr(importlib.import_module(module_name), factory)(settings)
    if settings.call_log:
        from kernel_app.providers.call_log import create_recorder, record_calls

        service = record_calls(service, create_recorder(settings))
    return trace_model_calls(service)
