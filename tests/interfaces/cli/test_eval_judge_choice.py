"""Which model judges llm-rubric: the embedded one unless --judge-service/--judge-model say otherwise."""

from __future__ import annotations

import pytest

from kernel_app.interfaces.cli.context import AppContext
from kernel_app.interfaces.cli.eval_cmd import _judge


def test_the_embedded_default_model_judges_whatever_model_is_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    judge = _judge(AppContext({"service": "openai", "model": "gpt-4o"}), None, None)
    assert type(judge.service).__name__ == "LocalLlamaChatCompletion"  # made, not loaded: a model loads on use
    assert judge.name == "Qwen2.5-Coder-1.5B-Instruct Q4_K_M"


def test_the_judge_options_name_another_service_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    judge = _judge(AppContext(), "openai", "gpt-4o")
    assert (type(judge.service).__name__, judge.service.ai_model_id, judge.name) == (
        "OpenAIChatCompletion",
        "gpt-4o",
        "gpt-4o",
    )
