"""The embedded default: SmolLM2-135M-Instruct through llama.cpp, no key and no network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel_app.config import Settings

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase


def create_local(settings: Settings) -> ChatCompletionClientBase:
    from kernel_app.services.local_llama import LocalLlamaChatCompletion

    kwargs = {"n_ctx": settings.local_context_tokens, "n_threads": settings.local_threads}
    if settings.model:
        kwargs["model_path"] = settings.model
    return LocalLlamaChatCompletion(service_id="local", **kwargs)
