"""The `memory` plugin: saved texts reach prompts through {{memory.recall ...}}."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.scripted import ScriptedChatCompletion


@pytest.mark.e2e
async def test_recall_inside_a_prompt_template(tmp_path: Path) -> None:
    folder = tmp_path / "plugins" / "Consultant" / "Advise"
    folder.mkdir(parents=True)
    (folder / "skprompt.txt").write_text("Notes:\n{{memory.recall $input collection='SWOT'}}\nQuestion: {{$input}}")
    (folder / "config.json").write_text(
        json.dumps({"description": "Advise from saved notes.", "input_variables": [{"name": "input"}]})
    )
    service = ScriptedChatCompletion(["Deliver late at night."])
    settings = Settings(memory_dir=tmp_path / "store", plugins_dirs=[tmp_path / "plugins"])
    built = build_kernel(settings, chat_service=service)
    save = resolve_function(built.kernel, "memory.save")
    await run_chain(
        built.kernel,
        [save],
        input="Late-night delivery could bring in more money",
        variables={"collection": "SWOT", "id": "opportunity-0"},
    )
    await run_chain(built.kernel, [save], input="The oven is old", variables={"collection": "SWOT", "id": "weakness-0"})
    result = await run_chain(
        built.kernel, [resolve_function(built.kernel, "Consultant.Advise")], input="How can the shop earn more money?"
    )
    assert result.result == "Deliver late at night."
    prompt = service.requests[0].prompt
    assert "[opportunity-0] Late-night delivery could bring in more money" in prompt
    assert "How can the shop earn more money?" in prompt


async def test_recall_from_an_unknown_collection_is_empty(tmp_path: Path) -> None:
    built = build_kernel(Settings(memory_dir=tmp_path / "store"), chat_service=ScriptedChatCompletion())
    result = await run_chain(
        built.kernel,
        [resolve_function(built.kernel, "memory.recall")],
        input="anything",
        variables={"collection": "Nothing"},
    )
    assert result.result == ""


async def test_the_plugin_reads_and_writes_the_callers_collections(tmp_path: Path) -> None:
    from kernel_app.kernel.memory_plugin import MemoryPlugin
    from memories import MemoryStore
    from memories.embedders import HashingEmbedder
    from memories.scope import CollectionScope, using_scope

    store = MemoryStore(tmp_path / "memory", embedder=HashingEmbedder(64))
    plugin = MemoryPlugin(lambda: store)
    alice, bob = CollectionScope.of("entra:t:alice"), CollectionScope.of("entra:t:bob")
    with using_scope(alice):
        plugin.save("The oven is old", collection="docs", id="w1")
        assert "[w1] The oven is old" in await plugin.recall("oven", collection="docs", min_relevance=-1)
    with using_scope(bob):  # bob's docs is not alice's
        assert await plugin.recall("oven", collection="docs", min_relevance=-1) == ""
    assert await plugin.recall("oven", collection="docs", min_relevance=-1) == ""  # nor the local user's "docs"
    assert [c.name for c in store.collections()] == [alice.stored("docs")]
