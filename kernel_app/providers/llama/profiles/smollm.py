"""SmolLM2-Instruct (135M, the tiny tier the tests run). See docs/models.md, "SmolLM2"."""

from __future__ import annotations

from kernel_app.providers.llama.profiles.base import ModelProfile

SMOLLM2 = ModelProfile(
    family="smollm2",
    title="SmolLM2-Instruct",
    trained_context_tokens=8_192,  # llama.context_length in the tier's GGUF file
    tool_call_format="generic",  # its template (ChatML) has no tool section
    # From the 5 most relevant functions, best first, it chose the expected one for 10 of 11 goals.
    planner_max_functions=5,
    tool_temperature=0.2,  # not measured on this family: the generic profile's value
    schema_chars_per_token=4,  # Qwen's measure; its tokenizer reads English at ~3.7 characters a token
    # Not a habit of this family; kept on as for every tier (it also carries the strings' length bounds).
    keep_schemas_out_of_cjk=True,
)
