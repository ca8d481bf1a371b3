"""OpenAI, OpenAI-compatible servers (Ollama, vLLM, llama.cpp server) and Azure OpenAI.

Configuration follows each vendor's own variables, so an environment that already works with the
official clients works here unchanged.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kernel_app.base.config import DEFAULT_OPENAI_MODEL, Settings
from kernel_app.base.errors import ConfigError

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
DEFAULT_AZURE_API_VERSION = "2024-10-21"
# A local OpenAI-compatible server (Ollama, vLLM, llama.cpp) ignores the key, but the client needs one.
PLACEHOLDER_KEY = "not-needed"


def create_openai(settings: Settings) -> ChatCompletionClientBase:
    from openai import AsyncOpenAI
    from semantic_kernel.connectors.ai.open_ai import OpenAIChatCompletion

    base_url = os.environ.get("OPENAI_BASE_URL") or None
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        if not base_url:
            raise ConfigError(
                "service 'openai' needs OPENAI_API_KEY: export OPENAI_API_KEY=sk-... "
                "(or set OPENAI_BASE_URL for a local OpenAI-compatible server such as Ollama)"
            )
        api_key = PLACEHOLDER_KEY
    model = settings.model or os.environ.get("OPENAI_MODEL") or DEFAULT_OPENAI_MODEL
    # semantic-kernel's OpenAIChatCompletion has no base_url argument: hand it a configured client.
    client = AsyncOpenAI(api_key=api_key, base_url=base_url)
    return OpenAIChatCompletion(ai_model_id=model, async_client=client, service_id="openai")


def create_azure(settings: Settings, credential: Any = None) -> ChatCompletionClientBase:
    """Azure OpenAI with an API key, or Microsoft Entra ID when no key is set.

    ``credential`` is an async azure-identity credential; by default ``DefaultAzureCredential``
    (environment, managed identity, Azure CLI...). The token provider is called per request, so
    tokens are refreshed as they expire.

    We drive the official ``AsyncAzureOpenAI`` client through semantic-kernel's OpenAI connector rather
    than its ``AzureChatCompletion``: that class re-reads the AZURE_OPENAI_* variables through its own
    settings model and rejects any endpoint that is not https, which rules out gateways and emulators
    on plain http (and our loopback protocol tests). The client itself routes ``model`` to
    ``/openai/deployments/{deployment}`` and handles both auth modes.
    """
    from openai import AsyncAzureOpenAI
    from semantic_kernel.connectors.ai.open_ai import OpenAIChatCompletion

    endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
    if not endpoint:
        raise ConfigError(
            "service 'azure' needs AZURE_OPENAI_ENDPOINT: export AZURE_OPENAI_ENDPOINT=https://NAME.openai.azure.com"
        )
    deployment = settings.model or os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME")
    if not deployment:
        raise ConfigError(
            "service 'azure' needs a deployment name: pass --model DEPLOYMENT or set KERNEL_APP_MODEL "
            "(or AZURE_OPENAI_CHAT_DEPLOYMENT_NAME)"
        )
    api_version = os.environ.get("AZURE_OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION
    api_key = os.environ.get("AZURE_OPENAI_API_KEY")
    if api_key:
        client = AsyncAzureOpenAI(azure_endpoint=endpoint, api_version=api_version, api_key=api_key)
    else:
        from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

        token_provider = get_bearer_token_provider(credential or DefaultAzureCredential(), AZURE_SCOPE)
        client = AsyncAzureOpenAI(
            azure_endpoint=endpoint, api_version=api_version, azure_ad_token_provider=token_provider
        )
    return OpenAIChatCompletion(ai_model_id=deployment, async_client=client, service_id="azure")
