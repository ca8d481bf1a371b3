"""plugins/_prompt_folders.py: the hidden prompt folder a native function falls back to (ChangeAudience's
``_audience_prompt/``, Ideate's ``_ideate_prompt/``), its sampling, and its answer streamed or not."""

from __future__ import annotations

import json
from pathlib import Path

from semantic_kernel.functions import KernelArguments

from kernel_app.base.config import Settings
from kernel_app.base.partial_output import parts_to
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from plugins._prompt_folders import prompt_answer, prompt_folder_function, prompt_folder_sampling


def _folder(tmp_path: Path, settings: object) -> Path:
    (tmp_path / "skprompt.txt").write_text("Say {{$input}} back.", encoding="utf-8")
    config = {"description": "Says it back.", "execution_settings": {"default": settings}}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path


def test_the_folder_is_a_function_with_its_template_and_settings(tmp_path: Path) -> None:
    function = prompt_folder_function(_folder(tmp_path, {"max_tokens": 50}), "EchoPrompt", "Echo")
    assert (function.plugin_name, function.name, function.description) == ("Echo", "EchoPrompt", "Says it back.")
    assert function.prompt_template.prompt_template_config.template == "Say {{$input}} back."
    assert function.prompt_execution_settings["default"].extension_data["max_tokens"] == 50


def test_sampling_keeps_the_asked_keys_and_falls_back_without_them(tmp_path: Path) -> None:
    keys, fallback = ("temperature", "top_p"), {"temperature": 0.5}
    folder = _folder(tmp_path, {"max_tokens": 50, "temperature": 0.9, "top_p": 0.3})
    assert prompt_folder_sampling(folder, keys, fallback) == {"temperature": 0.9, "top_p": 0.3}
    assert prompt_folder_sampling(_folder(tmp_path, {"max_tokens": 50}), keys, fallback) == fallback
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    assert prompt_folder_sampling(tmp_path, keys, fallback) == fallback
    assert prompt_folder_sampling(tmp_path / "missing", keys, fallback) == fallback


async def test_the_answer_is_streamed_only_when_asked_and_a_caller_takes_parts(tmp_path: Path) -> None:
    function = prompt_folder_function(_folder(tmp_path, {"max_tokens": 50}), "EchoPrompt", "Echo")
    kernel = build_kernel(Settings(), chat_service=ScriptedChatCompletion(["hello there", "hello again"])).kernel
    shown: list[str] = []
    with parts_to(shown.append):
        assert await prompt_answer(kernel, function, KernelArguments(input="hello"), stream=False) == "hello there"
        assert shown == []
        assert await prompt_answer(kernel, function, KernelArguments(input="hello"), stream=True) == "hello again"
    assert "".join(shown) == "hello again"
