"""Eval runs on the scripted chat service: a target per model name, an eval file written to a folder."""

from __future__ import annotations

from pathlib import Path

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.evals.runner import Target
from kernel_app.providers.scripted import ScriptedChatCompletion


def scripted_target(
    name: str, *answers: str, settings: Settings | None = None
) -> tuple[Target, ScriptedChatCompletion]:
    """A target whose model answers ``answers`` in order (and fails once they run out)."""
    service = ScriptedChatCompletion(answers, ai_model_id=name)
    built = build_kernel(settings or Settings(), chat_service=service)
    return Target(name, built.kernel, built.report), service


def write_eval(folder: Path, text: str, name: str = "summary.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
