"""Qwen2.5-Coder-Instruct (1.5B, the default tier; 0.5B, the small tier). See docs/models.md, "Qwen2.5-Coder"."""

from __future__ import annotations

from kernel_app.providers.llama.profiles.base import ModelProfile

QWEN2_5_CODER = ModelProfile(
    family="qwen2.5-coder",
    title="Qwen2.5-Coder-Instruct",
    trained_context_tokens=32_768,  # qwen2.context_length in both tiers' GGUF files
    tool_call_format="hermes",  # its template asks for <tool_call>{...}</tool_call>; it seldom writes them
    # The 1.5B planned the 22 bench goals as well from 8 functions as from 12, with a quarter less prompt.
    planner_max_functions=8,
    # At llama.cpp's default 0.8 the 1.5B wrapped 3 of 3 calls in made-up <tools> tags; at 0.2 none.
    tool_temperature=0.2,
    schema_chars_per_token=4,  # measured with its tokenizer on semantic-kernel's tool schemas
    keep_schemas_out_of_cjk=True,  # trained on much Chinese: "a challenge for顾客" in a SWOT cell
)
