"""Execution settings in a chat service's own settings class, from plain options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings


def execution_settings(service: ChatCompletionClientBase, options: Mapping[str, Any]) -> PromptExecutionSettings:
    """``options`` the class knows become fields; the rest go to ``extension_data``.

    semantic-kernel's connectors do not send unknown ``extension_data`` keys, so an option one service
    lacks (``response_format`` on a service without it) is harmless there, and the scripted test
    service records it, so tests can see it was asked for.
    """
    settings_class = service.get_prompt_execution_settings_class()
    fields = settings_class.model_fields
    known = {key: value for key, value in options.items() if key in fields}
    extra = {key: value for key, value in options.items() if key not in fields}
    settings = settings_class(service_id=service.service_id, **known)
    settings.extension_data.update(extra)
    return settings


def json_schema_format(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """OpenAI's structured-output ``response_format``, which the local service also understands (as a grammar).

    ``strict`` is off: strict mode cannot express free-form values, so the schema is a guide and the
    answer is still validated by whoever asked for it.
    """
    return {"type": "json_schema", "json_schema": {"name": name, "strict": False, "schema": schema}}


def supports_response_format(service: ChatCompletionClientBase) -> bool:
    """Whether the service's own settings class has a ``response_format`` field (OpenAI, Azure, local llama).

    Detected from the settings class rather than a list of service classes, so a new connector with
    structured output is used without changes here.
    """
    return "response_format" in service.get_prompt_execution_settings_class().model_fields
