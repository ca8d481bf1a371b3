"""The embedded default: a model tier by name (default Qwen2.5-Coder-1.5B) or any GGUF file, offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kernel_app.config import Settings
from kernel_app.services.model_tiers import DEFAULT_TIER, ModelTier, get_tier, looks_like_path

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

# A GGUF file of unknown size: offer the planner as many functions as the default tier.
PATH_PLANNER_MAX_FUNCTIONS = 12


def resolve_local_model(model: str | None) -> tuple[Path, ModelTier | None]:
    """``--model`` → the GGUF file to load and its tier (None for a path given by the user).

    A tier's file is joined from its parts and verified on first use (see model_cache).
    """
    from kernel_app.services.model_cache import ensure_model

    if model and looks_like_path(model):
        return Path(model).expanduser(), None
    tier = get_tier(model or DEFAULT_TIER)
    return ensure_model(tier), tier


def create_local(settings: Settings) -> ChatCompletionClientBase:
    from kernel_app.services.local_llama import LocalLlamaChatCompletion

    path, tier = resolve_local_model(settings.model)
    return LocalLlamaChatCompletion(
        model_path=str(path),
        n_ctx=settings.local_context_tokens,
        n_threads=settings.local_threads,
        ai_model_id=tier.title if tier else None,
        service_id="local",
        planner_max_functions=tier.planner_max_functions if tier else PATH_PLANNER_MAX_FUNCTIONS,
    )
