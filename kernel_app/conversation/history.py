"""How much of a conversation goes back to the model: bounded by tokens for the model in use.

semantic-kernel has no token counter and the services we run have different tokenizers, so tokens
are estimated (about four characters a token, plus a few per message for the chat template) and
the budget keeps a safety margin. What is dropped from the prompt stays in the store.
"""

from __future__ import annotations

from collections.abc import Sequence

from kernel_app.conversation.store import Message
from kernel_app.providers.llama.profiles import SMOLLM2, ModelProfile

CHARS_PER_TOKEN = 3.5  # conservative for English with BPE tokenizers (OpenAI's ~4, SmolLM2's ~3.7)
PER_MESSAGE_TOKENS = 6  # role markers of a chat template
DEFAULT_CONTEXT_TOKENS = 8192


def trained_context(profile: ModelProfile) -> int:
    """An embedded family's trained context window (its profile's), for a model known by name."""
    if profile.trained_context_tokens is None:
        raise ValueError(f"the {profile.family} model profile has no trained_context_tokens: set it to list it")
    return profile.trained_context_tokens


# Context windows of models we know, by name prefix (longest prefix wins).
KNOWN_CONTEXTS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4.1": 1_000_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
    SMOLLM2.family: trained_context(SMOLLM2),  # "smollm2"
}


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def message_tokens(message: Message) -> int:
    size = len(message.content) + sum(len(str(call.arguments)) + len(call.function) for call in message.tool_calls)
    return int(size / CHARS_PER_TOKEN) + PER_MESSAGE_TOKENS


def context_tokens_for(model: str | None, configured: int | None = None) -> int:
    """The context window: ``configured`` (e.g. the embedded model's ``local_context_tokens``) wins."""
    if configured:
        return configured
    name = (model or "").lower().rsplit("/", 1)[-1]
    matches = [prefix for prefix in KNOWN_CONTEXTS if name.startswith(prefix)]
    return KNOWN_CONTEXTS[max(matches, key=len)] if matches else DEFAULT_CONTEXT_TOKENS


def fit(messages: Sequence[Message], budget: int, *, max_turns: int | None = None) -> list[Message]:
    """The newest messages whose estimated tokens fit ``budget``, oldest first.

    Cuts only where a user message starts, so an assistant's tool calls are never separated from
    their results and an answer never appears without its question. The newest user turn is kept
    even when it alone is over budget (the model then says so, or cuts its answer). ``max_turns``
    also caps the number of user turns kept.
    """
    starts = [i for i, m in enumerate(messages) if m.role == "user"] or [0]
    if not messages:
        return []
    kept_from = len(messages)
    used = 0
    for turns, start in enumerate(reversed(starts)):
        cost = sum(message_tokens(m) for m in messages[start:kept_from])
        if kept_from < len(messages) and used + cost > budget:
            break
        if max_turns is not None and turns >= max_turns:
            break
        used += cost
        kept_from = start
        if used > budget:
            break
    return list(messages[kept_from:])
