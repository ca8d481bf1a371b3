"""Semantic Kernel's ``TextMemoryPlugin`` names in templates reach our memory, with their arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.scripted import ScriptedChatCompletion

pytestmark = pytest.mark.e2e  # the memory store loads its embedding model


def prompt_folder(root: Path, name: str, template: str, template_format: str, variables: list[str]) -> None:
    folder = root / "Consultant" / name
    folder.mkdir(parents=True)
    (folder / "skprompt.txt").write_text(template, encoding="utf-8")
    config = {
        "description": "Advise from saved notes.",
        "template_format": template_format,
        "input_variables": [{"name": v, "description": v} for v in variables],
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


async def saved_kernel(tmp_path: Path, service: ScriptedChatCompletion) -> Any:
    built = build_kernel(
        Settings(memory_dir=tmp_path / "store", plugins_dirs=[tmp_path / "plugins"]), chat_service=service
    )
    save = resolve_function(built.kernel, "TextMemoryPlugin.save")
    for key, text in (("opportunity-0", "Late-night delivery could bring in more money"), ("w-0", "The oven is old")):
        await run_chain(built.kernel, [save], input=text, variables={"collection": "SWOT", "key": key})
    return built


async def test_sk_syntax_recall_with_collection_relevance_and_limit(tmp_path: Path) -> None:
    template = "Notes: {{TextMemoryPlugin.recall $input collection='SWOT' relevance='0.1' limit='2'}}\nQ: {{$input}}"
    prompt_folder(tmp_path / "plugins", "Advise", template, "semantic-kernel", ["input"])
    service = ScriptedChatCompletion(["Deliver late at night."])
    built = await saved_kernel(tmp_path, service)
    result = await run_chain(
        built.kernel, [resolve_function(built.kernel, "Consultant.Advise")], input="How can the shop earn more money?"
    )
    assert result.result == "Deliver late at night."
    notes = service.requests[0].prompt.split("Notes: ", 1)[1].split("\nQ:", 1)[0]
    texts = json.loads(notes.replace("&quot;", '"'))  # limit 2: a JSON list, as Semantic Kernel returns
    assert texts[0] == "Late-night delivery could bring in more money"
    assert len(texts) <= 2


async def test_handlebars_recall_of_a_semantic_query(tmp_path: Path) -> None:
    template = "Notes: {{TextMemoryPlugin-recall input=semanticQuery collection='SWOT'}}\nQ: {{semanticQuery}}"
    prompt_folder(tmp_path / "plugins", "Advise", template, "handlebars", ["semanticQuery"])
    service = ScriptedChatCompletion(["Deliver late at night."])
    built = await saved_kernel(tmp_path, service)
    function = resolve_function(built.kernel, "Consultant.Advise")
    await run_chain(built.kernel, [function], variables={"semanticQuery": "How can the shop earn more money?"})
    assert "Notes: Late-night delivery could bring in more money\n" in service.requests[0].prompt


# As samples write it in handlebars: the dot and the query without a name (kernel/template_engines.py).
@pytest.mark.parametrize(
    ("template", "template_format"),
    [
        ("Notes: {{TextMemoryPlugin.recall semanticQuery collection='SWOT'}}\nQ: {{semanticQuery}}", "handlebars"),
        ("Notes: {{TextMemorySkill.recall semanticQuery collection='SWOT'}}\nQ: {{semanticQuery}}", "handlebars"),
        ("Notes: {{ TextMemoryPlugin_recall(semanticQuery, 'SWOT') }}\nQ: {{ semanticQuery }}", "jinja2"),
        (
            "Notes: {{TextMemoryPlugin.recall $semanticQuery collection='SWOT'}}\nQ: {{$semanticQuery}}",
            "semantic-kernel",
        ),
    ],
)
async def test_recall_with_a_positional_query_in_each_format(
    tmp_path: Path, template: str, template_format: str
) -> None:
    prompt_folder(tmp_path / "plugins", "Advise", template, template_format, ["semanticQuery"])
    service = ScriptedChatCompletion(["Deliver late at night."])
    built = await saved_kernel(tmp_path, service)
    assert not [p for p in built.report.problems if p.path.startswith(str(tmp_path))]
    function = resolve_function(built.kernel, "Consultant.Advise")
    await run_chain(built.kernel, [function], variables={"semanticQuery": "How can the shop earn more money?"})
    assert "Notes: Late-night delivery could bring in more money\n" in service.requests[0].prompt
