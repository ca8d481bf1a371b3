"""The shape of a model profile: what the app needs to know about one family of GGUF models."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ModelProfile:
    """One family's numbers and habits, each backed by a measurement in docs/models.md.

    A profile describes a family (Qwen2.5-Coder, SmolLM2), not one file: the tier table
    (:mod:`kernel_app.providers.llama.tiers`) says which profile each tier's file belongs to, and a GGUF
    file given by path gets :data:`~kernel_app.providers.llama.profiles.generic.GENERIC`.
    """

    # The key of the family ("qwen2.5-coder"), as in docs/models.md's section titles.
    family: str
    title: str
    # The context the family was trained for (the GGUF's ``<architecture>.context_length``); None when
    # unknown. The app runs every tier at ``local_context_tokens`` (4,096), well inside it.
    trained_context_tokens: int | None = None
    # How the GGUF's chat template asks for a tool call: "hermes" (``<tool_call>{...}</tool_call>``), or
    # "generic" (the template has no tool section and llama.cpp uses its own format). Whatever it says,
    # the family's small models may answer with the bare call object, which tools.calls_in_text reads.
    tool_call_format: str = "generic"
    # How many functions a planner (and the chat engine, per turn) offers the model, most relevant first.
    planner_max_functions: int = 12
    # The temperature a turn that offers tools samples at, unless the caller sets one. The chat engine
    # reads it from the service's profile (conversation.engine.tool_temperature); a service that declares
    # planner_max_functions but has no profile gets GENERIC's.
    tool_temperature: float = 0.2
    # Characters of JSON tool schema per token, to refuse a tool list that would fill the context.
    schema_chars_per_token: int = 4
    # Whether the free-text strings of a JSON schema exclude CJK characters when the prompt has none
    # (:mod:`kernel_app.providers.llama.script`): the family slips into Chinese mid-sentence.
    keep_schemas_out_of_cjk: bool = True
