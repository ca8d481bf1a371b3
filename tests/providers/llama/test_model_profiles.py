"""One profile per model family: the tier table points at it, the service reads it, a GGUF path gets the
generic one, and the conversation engine reads its numbers from it (docs/models.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from semantic_kernel.contents import ChatHistory
from semantic_kernel.exceptions import ServiceInvalidExecutionSettingsError

from kernel_app.base.config import Settings
from kernel_app.base.errors import ConfigError
from kernel_app.conversation import ConversationEngine
from kernel_app.conversation.engine import tool_temperature
from kernel_app.conversation.history import KNOWN_CONTEXTS, context_tokens_for
from kernel_app.conversation.offer import SemanticRelevance
from kernel_app.conversation.store import Message
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.llama.profiles import GENERIC, PROFILES, QWEN2_5_CODER, SMOLLM2, ModelProfile
from kernel_app.providers.llama.service import LocalLlamaChatCompletion, LocalLlamaPromptExecutionSettings
from kernel_app.providers.llama.tiers import DEFAULT_TIER, TIERS, get_tier, profile_for
from kernel_app.providers.llama.tools import check_tools_fit
from memories.embedders import HashingEmbedder
from tests.support.cli import ROOT
from tests.support.fake_llama import ADD_TOOL, scripted_llama  # noqa: F401 (the fake llama.cpp fixture ``scripted``)
from tests.support.fake_llama import llama_chunks as _chunks
from tests.support.tool_scripted import ToolScripted


def test_each_tier_points_at_its_familys_profile() -> None:
    assert get_tier("qwen2.5-coder-1.5b").profile is QWEN2_5_CODER
    assert get_tier("qwen2.5-coder-0.5b").profile is QWEN2_5_CODER
    assert get_tier("smollm2-135m").profile is SMOLLM2
    assert {tier.profile.family for tier in TIERS.values()} == {"qwen2.5-coder", "smollm2"}


def test_a_tiers_planner_size_is_its_profiles() -> None:
    # The numbers the planner has always been offered per tier, now read from the family.
    assert {name: tier.planner_max_functions for name, tier in TIERS.items()} == {
        "qwen2.5-coder-1.5b": 8,
        "qwen2.5-coder-0.5b": 8,
        "smollm2-135m": 5,
    }


@pytest.mark.parametrize(
    ("model", "family"),
    [
        (None, "qwen2.5-coder"),  # no --model: the default tier
        ("qwen2.5-coder-0.5b", "qwen2.5-coder"),
        (" SmolLM2-135M ", "smollm2"),  # as get_tier reads a name
        ("models/my-model.gguf", "generic"),
        # A path's family is not guessed from its name: a Qwen file by path gets the generic numbers.
        ("~/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "generic"),
        ("./smollm2-135m-instruct-q4_1.gguf", "generic"),
    ],
)
def test_a_model_values_profile(model: str | None, family: str) -> None:
    assert profile_for(model).family == family


def test_an_unknown_tier_name_is_the_tier_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'qwen3'.*or a path to a \.gguf file"):
        profile_for("qwen3")


def test_the_default_profile_for_any_other_file_keeps_the_numbers_a_path_always_had() -> None:
    assert GENERIC.planner_max_functions == 12
    assert GENERIC.trained_context_tokens is None
    assert GENERIC.schema_chars_per_token == 4 and GENERIC.keep_schemas_out_of_cjk
    assert profile_for(DEFAULT_TIER) is not GENERIC


def test_profiles_are_frozen_and_keyed_by_family() -> None:
    assert PROFILES == {"qwen2.5-coder": QWEN2_5_CODER, "smollm2": SMOLLM2, "generic": GENERIC}
    with pytest.raises(dataclasses.FrozenInstanceError):
        QWEN2_5_CODER.planner_max_functions = 12  # type: ignore[misc]
    with pytest.raises(TypeError):
        ModelProfile("x", "X")  # type: ignore[misc]  # keyword-only: a positional slip cannot swap numbers


def profiled(profile: ModelProfile, *answers: str) -> ToolScripted:
    """A small model as the engine sees the embedded one: it declares its limit and has ``profile``."""

    class Profiled(ToolScripted):
        planner_max_functions: int = 4

        @property
        def profile(self) -> ModelProfile:
            return profile

    return Profiled(list(answers))


class LimitOnly(ToolScripted):
    planner_max_functions: int = 4  # a limit, no profile


def test_the_chat_engine_samples_a_small_model_at_its_profiles_tool_temperature() -> None:
    warm = dataclasses.replace(SMOLLM2, tool_temperature=0.55)  # a number no profile has: read, not copied
    assert tool_temperature(profiled(warm)) == 0.55
    assert tool_temperature(profiled(QWEN2_5_CODER)) == QWEN2_5_CODER.tool_temperature
    # A service that declares a limit but has no profile samples as a GGUF file given by path: generic.
    assert tool_temperature(LimitOnly([])) == GENERIC.tool_temperature == 0.2


async def test_a_turn_on_a_small_model_carries_its_profiles_temperature_unless_the_caller_sets_one() -> None:
    warm = dataclasses.replace(SMOLLM2, tool_temperature=0.55)
    service = profiled(warm, "hello", "hello")
    # A small model is offered the functions closest to the message; rank them by hashed words, not MiniLM
    # (loading the embedder is e2e work, and this test is about the temperature).
    relevance = SemanticRelevance(HashingEmbedder(64))
    engine = ConversationEngine(build_kernel(Settings(), chat_service=service).kernel, relevance=relevance)
    [e async for e in engine.stream(engine.create().id, "Say hello")]
    [e async for e in engine.complete([Message("user", "Say hello")], options={"temperature": 0.9})]
    assert [request.settings.get("temperature") for request in service.requests] == [0.55, 0.9]


async def test_a_service_that_declares_no_limit_keeps_its_own_temperature() -> None:
    service = ToolScripted(["hello"])  # OpenAI, Azure: no planner_max_functions
    engine = ConversationEngine(build_kernel(Settings(), chat_service=service).kernel)
    [e async for e in engine.stream(engine.create().id, "Say hello")]
    assert service.requests[0].settings.get("temperature") is None


def test_the_conversation_historys_context_for_smollm2_is_read_from_its_profile() -> None:
    assert KNOWN_CONTEXTS[SMOLLM2.family] is SMOLLM2.trained_context_tokens  # the object: read, not copied
    assert context_tokens_for("SmolLM2-135M-Instruct Q4_1") == SMOLLM2.trained_context_tokens == 8_192


def test_every_profile_has_a_section_in_docs_models() -> None:
    doc = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    for profile in PROFILES.values():
        assert f"`{profile.family}`" in doc, f"docs/models.md has no section for the {profile.family} profile"


def test_a_service_on_a_gguf_path_has_the_generic_profile(scripted) -> None:
    service, _ = scripted([])
    assert service.tier is None and service.profile is GENERIC
    assert service.planner_max_functions == GENERIC.planner_max_functions


def test_a_service_on_a_tier_has_its_familys_profile() -> None:
    pytest.importorskip("xllamacpp")
    from kernel_app.providers.llama.cache import is_verified

    tier = get_tier("smollm2-135m")
    if not is_verified(tier):
        pytest.skip("the smollm2-135m tier is not installed")
    service = LocalLlamaChatCompletion(tier=tier.name, n_threads=1)
    assert service.profile is SMOLLM2 and service.planner_max_functions == SMOLLM2.planner_max_functions
    assert LocalLlamaChatCompletion(tier=tier.name, n_threads=1, planner_max_functions=3).planner_max_functions == 3


SCHEMA: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"schema": SCHEMA}}


def _english() -> ChatHistory:
    history = ChatHistory()
    history.add_user_message("A SWOT of a bakery in Lyon")
    return history


@pytest.mark.parametrize("keep_out", [True, False])
async def test_the_no_cjk_pattern_follows_the_profile(scripted, monkeypatch, keep_out: bool) -> None:
    service, server = scripted([_chunks("{}")])
    profile = dataclasses.replace(GENERIC, keep_schemas_out_of_cjk=keep_out)
    monkeypatch.setattr(LocalLlamaChatCompletion, "profile", property(lambda self: profile))
    settings = LocalLlamaPromptExecutionSettings(max_tokens=9, response_format=SCHEMA_FORMAT)
    await service.get_chat_message_content(_english(), settings)
    sent = server.requests[0]["response_format"]["json_schema"]["schema"]["properties"]["a"]
    assert ("pattern" in sent) is keep_out


async def test_the_tool_schema_budget_uses_the_profiles_characters_per_token(scripted, monkeypatch) -> None:
    service, server = scripted([])
    tools = [ADD_TOOL] * 30  # ~5,500 characters: ~1,400 tokens at 4 a token, ~2,800 at 2
    check_tools_fit(tools, 4096, GENERIC.schema_chars_per_token)  # fits half of 4,096 at the generic 4
    profile = dataclasses.replace(GENERIC, schema_chars_per_token=2)  # a tokenizer that reads JSON coarsely
    monkeypatch.setattr(LocalLlamaChatCompletion, "profile", property(lambda self: profile))
    settings = LocalLlamaPromptExecutionSettings(max_tokens=8, tools=tools, tool_choice="auto")
    with pytest.raises(ServiceInvalidExecutionSettingsError, match=r"30 functions offered to the local model take ~2"):
        await service.get_chat_message_content(_english(), settings)
    assert server.requests == []  # refused before llama.cpp saw it
