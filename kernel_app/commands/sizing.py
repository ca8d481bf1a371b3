"""How long an answer may be, and whether the functions' tool schemas fit the model's context.

The default answer length follows the model's context (``/set max_tokens`` overrides it); a prompt
function's own ``max_tokens`` tells when its result was cut; a small context (the embedded model's
4,096 tokens) may not hold every function's schema, and then free text offers none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kernel_app.conversation.history import estimate_tokens

if TYPE_CHECKING:
    from kernel_app.conversation.engine import ConversationEngine


def answer_tokens(context_tokens: int) -> int:
    """The default answer length for a model's context: a quarter of it, between 256 and 4096 tokens."""
    return max(256, min(4096, context_tokens // 4))


def function_max_tokens(function: Any) -> int | None:
    """A prompt function's max_tokens from its config.json (the first service's that sets one)."""
    if not getattr(function, "is_prompt", False):
        return None
    for settings in (getattr(function, "prompt_execution_settings", None) or {}).values():
        value = settings.extension_data.get("max_tokens") or getattr(settings, "max_tokens", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def tools_fit(engine: ConversationEngine) -> bool:
    """Whether the tool schemas of the functions the engine would offer leave room for a turn and its answer."""
    import json

    from semantic_kernel.connectors.ai.function_calling_utils import kernel_function_metadata_to_function_call_format

    try:
        if not engine.service.SUPPORTS_FUNCTION_CALLING:
            return True  # nothing is offered anyway
    except Exception:
        return True
    allowed = set(engine.allowed_functions())
    sizes = sorted(
        (
            len(json.dumps(kernel_function_metadata_to_function_call_format(m)))
            for m in engine.kernel.get_full_list_of_function_metadata()
            if f"{m.plugin_name}.{m.name}" in allowed
        ),
        reverse=True,
    )
    # The engine offers at most its limit per turn (the most relevant): count the largest that many.
    size = sum(sizes[: engine.offer_limit()])
    context = engine.context_tokens
    # Room left for the system message, the newest turn and the answer, in the 90% the engine plans with.
    return estimate_tokens("x" * size) + answer_tokens(context) + 512 <= context * 0.9
