"""The embedded default: a model tier by name (default qwen2.5-coder-1.5b) or any GGUF file, offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kernel_app.base.config import Settings
from kernel_app.providers.llama.tiers import DEFAULT_TIER, ModelTier, get_tier, looks_like_path

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase


def resolve_local_model(model: str | None) -> tuple[Path, ModelTier | None]:
    """``--model`` → the GGUF file to load and its tier (None for a path given by the user), joining and
    verifying a tier's file now if need be (see model_cache). The chat service defers that to its
    first request instead."""
    from kernel_app.providers.llama.cache import ensure_model

    if model and looks_like_path(model):
        return Path(model).expanduser(), None
    tier = get_tier(model or DEFAULT_TIER)
    return ensure_model(tier), tier


def create_local(settings: Settings) -> ChatCompletionClientBase:
    from kernel_app.providers.llama.service import LocalLlamaChatCompletion

    model = settings.model
    common = {"n_ctx": settings.local_context_tokens, "n_threads": settings.local_threads, "service_id": "local"}
    if model and looks_like_path(model):
        return LocalLlamaChatCompletion(model_path=model, **common)  # the generic profile's numbers
    return LocalLlamaChatCompletion(tier=get_tier(model or DEFAULT_TIER).name, **common)
